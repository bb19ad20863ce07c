"""``check_tasks``: replay every task's gold path through its env and expect reward 1.

Gymnasium's ``check_env`` checks that an env follows the API; ``check_tasks`` checks
its data, which is where a new task source goes wrong: a gold path whose answer the
scorer does not accept, a query the search tool cannot answer, a path longer than
the step budget. Each task is reset on and its gold path is taken, step by step, as
an agent would take it; the task passes when the last gold action is the answer and
it gets reward 1. Everything that fails is reported at once, each task with why::

    from swirl_envs import check_tasks

    check_tasks(env)                                   # raises TaskCheckError listing the failures
    report = check_tasks(env, raise_on_failure=False)  # or look at them yourself
    print(report.format())
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym

from swirl_envs.actions import FinalAnswer, ParseError, ToolCall
from swirl_envs.env import SwirlEnv
from swirl_envs.task import Task


@dataclass(frozen=True)
class TaskFailure:
    """One task whose gold path does not replay to reward 1.

    Attributes:
        index: The task's index in ``env.tasks`` (``reset(options={"index": index})``).
        task_id: The task's id.
        reason: What went wrong, naming the gold step and quoting the env.
        transcript: The transcript when the replay stopped (empty if it never started).
    """

    index: int
    task_id: str
    reason: str
    transcript: str = ""

    def __str__(self) -> str:
        return f"task {self.index} ({self.task_id!r}): {self.reason}"


@dataclass(frozen=True)
class TaskCheckReport:
    """What ``check_tasks`` found.

    Attributes:
        checked: How many tasks were replayed.
        failures: Every task that failed, in task order.
    """

    checked: int
    failures: tuple[TaskFailure, ...]

    @property
    def ok(self) -> bool:
        """True when every task's gold path replays to reward 1."""
        return not self.failures

    def format(self, limit: int = 20) -> str:
        """A summary line, then one line per failure (the first ``limit`` of them)."""
        lines = [f"{self.checked - len(self.failures)} of {self.checked} gold paths replay to 1"]
        lines += [f"- {failure}" for failure in self.failures[:limit]]
        if len(self.failures) > limit:
            lines.append(f"- ... and {len(self.failures) - limit} more")
        return "\n".join(lines)


class TaskCheckError(ValueError):
    """Raised by ``check_tasks`` when some task fails; ``report`` holds every failure."""

    def __init__(self, report: TaskCheckReport):
        super().__init__(report.format())
        self.report = report


def check_tasks(env: gym.Env, *, raise_on_failure: bool = True) -> TaskCheckReport:
    """Replay every task's gold path through ``env`` and expect reward 1 on its answer.

    A task fails when it has no gold path, when its id repeats an earlier task's
    (stores and judges key on task ids), when a gold action is malformed or its tool
    reports an error or raises, when the path answers before its last action or ends
    without an answer, when the step budget runs out first, or when the answer's
    reward is not 1. The env is left on the last task's episode.

    Args:
        env: A ``SwirlEnv``, wrapped or not (``gym.make`` gives a wrapped one).
        raise_on_failure: Raise ``TaskCheckError`` if any task fails; otherwise only
            return the report.

    Returns:
        The report: how many tasks were checked and each failure with its reason.

    Raises:
        TaskCheckError: Some task failed and ``raise_on_failure`` is true.
        TypeError: ``env`` is not a ``SwirlEnv``.
    """
    base = getattr(env, "unwrapped", env)
    if not isinstance(base, SwirlEnv):
        raise TypeError(f"check_tasks needs a SwirlEnv, got {type(base).__name__}.")
    failures = []
    first_with_id: dict[str, int] = {}
    for index, task in enumerate(base.tasks):
        earlier = first_with_id.setdefault(task.id, index)
        if earlier != index:
            reason = (
                f"its id repeats task {earlier}'s; episodes and judgements are keyed by task id"
            )
            failures.append(TaskFailure(index, task.id, reason))
            continue
        failure = _replay(base, index, task)
        if failure is not None:
            failures.append(failure)
    report = TaskCheckReport(len(base.tasks), tuple(failures))
    if raise_on_failure and not report.ok:
        raise TaskCheckError(report)
    return report


def _replay(env: SwirlEnv, index: int, task: Task) -> TaskFailure | None:
    """Take ``task``'s gold path; the failure, or None when the answer gets reward 1."""
    if not task.gold_path:
        return TaskFailure(index, task.id, "it has no gold path")
    total = len(task.gold_path)
    transcript, where, reward = "", "reset", 0.0
    try:
        transcript, _ = env.reset(options={"index": index})
        for number, action in enumerate(task.gold_path, start=1):
            where = f"gold step {number} of {total}"
            parsed = env.parse_action(action)
            if isinstance(parsed, ParseError):
                reason = f"{where} is malformed ({parsed.message}): {action!r}"
                return TaskFailure(index, task.id, reason, transcript)
            # The tool runs here, not in the env, to see whether it reported an error.
            result = (
                env.tool(parsed.name)(parsed.argument, env.task)
                if isinstance(parsed, ToolCall)
                else None
            )
            transcript, reward, terminated, truncated, _ = env.apply(action, parsed, result)
            if result is not None and not result.ok:
                reason = f"{where}: the {parsed.name} tool answered with an error: {result.text!r}"
                return TaskFailure(index, task.id, reason, transcript)
            if terminated and number < total:
                reason = (
                    f"{where} answers, so the {total - number} gold action(s) after it never run"
                )
                return TaskFailure(index, task.id, reason, transcript)
            if truncated:
                reason = f"the step budget (max_steps={env.max_steps}) runs out at {where}"
                return TaskFailure(index, task.id, reason, transcript)
    except Exception as error:  # noqa: BLE001 - a broken task (or tool) is reported, not raised
        reason = f"{where} raised {type(error).__name__}: {error}"
        return TaskFailure(index, task.id, reason, transcript)
    if not isinstance(parsed, FinalAnswer):
        reason = f"the gold path ends after {total} action(s) without an answer"
        return TaskFailure(index, task.id, reason, transcript)
    if reward != 1.0:
        reason = (
            f"the gold answer {parsed.text!r} gets reward {reward:g}, not 1 "
            f"(gold answers: {list(task.answers)})"
        )
        return TaskFailure(index, task.id, reason, transcript)
    return None

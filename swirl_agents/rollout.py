"""The rollout engine: many episodes at once, one batched policy call per round.

An episode is a ``(task index, sample)`` pair of one env. The engine keeps up to
``batch_size`` episodes live, each in its own copy of the env, and every round

1. asks the policy for the next action of every live episode in one call,
2. parses each action once (``env.parse_action``), serves every call of the round
   to one tool in one ``Tool.call_many`` (the search tool scores all queries at
   once), and applies each action with its result (``env.apply``),
3. appends the episodes that finished to the store in one write, and refills
   the free slots with the next episodes.

Everything random about an episode is seeded by ``episode_seed(seed, task_id,
sample)``, so the set of trajectories depends on the seed only: not on the batch
size, the order episodes finish in, or a crash and resume (with a store, finished
episodes are skipped and the rest run as they would have).
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym

from swirl_agents.policies.base import Observation, Policy, describe_policy, episode_seed
from swirl_agents.store import TrajectoryStore
from swirl_agents.trajectory import Step, Trajectory
from swirl_envs.actions import ANSWER_TAG, Action, ToolCall
from swirl_envs.env import SwirlEnv
from swirl_envs.tools.base import Tool, ToolResult

EnvSource = str | gym.Env
"""A gymnasium id (made with default settings) or an env instance (wrapped or not)."""


@dataclass
class RolloutSummary:
    """What a rollout did and how fast.

    Attributes:
        episodes: Episodes run (and stored) by this call.
        skipped: Episodes already in the store, not run again.
        score: Sum of the final scores of this call's episodes.
        actions: Policy actions taken.
        completion_tokens: Tokens the policy generated (0 if it does not count them).
        seconds: Wall time of the whole call.
        policy_seconds: Time inside ``policy.act``.
        env_seconds: Time in env resets, steps and tool calls.
        store_seconds: Time writing the store.
    """

    episodes: int = 0
    skipped: int = 0
    score: float = 0.0
    actions: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    policy_seconds: float = 0.0
    env_seconds: float = 0.0
    store_seconds: float = 0.0

    @property
    def accuracy(self) -> float:
        """Mean final score of this call's episodes."""
        return self.score / self.episodes if self.episodes else 0.0

    @property
    def episodes_per_second(self) -> float:
        """Finished episodes per second of wall time."""
        return self.episodes / self.seconds if self.seconds else 0.0

    @property
    def actions_per_second(self) -> float:
        """Policy actions per second of wall time."""
        return self.actions / self.seconds if self.seconds else 0.0

    @property
    def tokens_per_second(self) -> float:
        """Generated tokens per second of wall time."""
        return self.completion_tokens / self.seconds if self.seconds else 0.0

    @property
    def overhead(self) -> float:
        """Share of wall time spent in envs, tools and the store rather than the policy."""
        return (self.env_seconds + self.store_seconds) / self.seconds if self.seconds else 0.0

    def format(self) -> str:
        """A one-paragraph human summary."""
        return (
            f"{self.episodes} episodes ({self.skipped} already stored), accuracy "
            f"{self.accuracy:.3f}, {self.actions} actions in {self.seconds:.1f} s: "
            f"{self.episodes_per_second:.2f} episodes/s, {self.actions_per_second:.1f} actions/s, "
            f"{self.tokens_per_second:.0f} tokens/s; policy {self.policy_seconds:.1f} s, "
            f"env+tools {self.env_seconds:.2f} s, store {self.store_seconds:.2f} s "
            f"({100 * self.overhead:.1f}% overhead)"
        )


@dataclass
class RolloutResult:
    """The trajectories of one rollout call (in finishing order) and its summary."""

    trajectories: list[Trajectory]
    summary: RolloutSummary


@dataclass
class _Source:
    """One env the episodes come from, with a pool of copies for the live slots."""

    env: SwirlEnv
    env_id: str
    env_kwargs: dict[str, Any]
    stop: tuple[str, ...]
    free: list[SwirlEnv] = field(default_factory=list)

    def take(self) -> SwirlEnv:
        """A copy of the env for one live episode (shares tasks and tools, not episode state)."""
        return self.free.pop() if self.free else copy.copy(self.env)


@dataclass(eq=False)  # compared by identity: each live episode is one object
class _Episode:
    source: _Source
    env: SwirlEnv
    index: int
    trajectory: Trajectory
    observation: Observation
    started: float
    policy_seconds: float = 0.0
    env_seconds: float = 0.0


def rollout(
    envs: EnvSource | Sequence[EnvSource],
    policy: Policy,
    *,
    samples: int = 1,
    batch_size: int = 32,
    seed: int = 0,
    num_tasks: int | None = None,
    select: Callable[[str, int], bool] | None = None,
    store: TrajectoryStore | None = None,
    progress: bool = True,
    keep: bool = True,
) -> RolloutResult:
    """Run ``samples`` episodes of ``policy`` on every task of every env.

    Args:
        envs: One or more envs: gymnasium ids or instances whose ``unwrapped`` is a
            ``SwirlEnv``. Their task ids must not collide (a store keys on them).
        policy: Anything with ``act(observations) -> actions``.
        samples: Episodes per task (SWiRL's k samples per question).
        batch_size: Live episodes at once, i.e. the policy's batch size.
        seed: The run seed; each episode's seed derives from it, the task id and the
            sample, and is recorded in the trajectory.
        num_tasks: Use only the first ``num_tasks`` tasks of each env.
        select: Run only the episodes whose ``(task_id, sample)`` it accepts (one shard of
            a run split across machines); each runs exactly as it would in the whole run.
        store: Append every finished episode here and skip the ones it holds.
        progress: Show a tqdm bar with episodes/s, tokens/s and accuracy so far.
        keep: Return the trajectories (turn off for runs too big for memory).

    Returns:
        This call's trajectories and a ``RolloutSummary``.
    """
    if samples < 1 or batch_size < 1:
        raise ValueError(f"samples and batch_size must be >= 1, got {samples} and {batch_size}.")
    if not callable(getattr(policy, "act", None)):
        raise TypeError(f"{type(policy).__name__} is not a Policy: it has no act() method.")
    sources = _sources(envs)
    todo = list(_episodes(sources, samples, num_tasks))
    if select is not None:
        todo = [item for item in todo if select(item[0].env.tasks[item[1]].id, item[2])]
    done = store.keys if store is not None else frozenset()
    pending = [item for item in todo if (item[0].env.tasks[item[1]].id, item[2]) not in done]
    summary = RolloutSummary(skipped=len(todo) - len(pending))
    engine = _Engine(policy, seed, store, summary, keep)
    with _progress_bar(len(pending), progress) as bar:
        engine.run(iter(pending), batch_size, bar)
    return RolloutResult(engine.trajectories, summary)


class _Engine:
    """The round loop of one ``rollout`` call."""

    def __init__(
        self,
        policy: Policy,
        seed: int,
        store: TrajectoryStore | None,
        summary: RolloutSummary,
        keep: bool,
    ):
        self.policy = policy
        self.policy_info = describe_policy(policy)
        self.seed = seed
        self.store = store
        self.summary = summary
        self.keep = keep
        self.trajectories: list[Trajectory] = []
        stats = getattr(policy, "stats", None)
        self._tokens_before = stats.completion_tokens if stats is not None else 0

    def run(self, pending: Iterator[tuple[_Source, int, int]], batch_size: int, bar: Any) -> None:
        """Keep ``batch_size`` episodes live until ``pending`` is exhausted."""
        started = time.perf_counter()
        live: list[_Episode] = []
        while True:
            while len(live) < batch_size and (item := next(pending, None)) is not None:
                live.append(self._start(*item))
            if not live:
                break
            finished = self._round(live)
            live = [episode for episode in live if episode not in finished]
            self._finish(finished)
            self.summary.seconds = time.perf_counter() - started
            _update_bar(bar, self.summary, len(finished))
        self.summary.seconds = time.perf_counter() - started

    def _start(self, source: _Source, index: int, sample: int) -> _Episode:
        began = time.perf_counter()
        env = source.take()
        task = env.tasks[index]
        seed = episode_seed(self.seed, task.id, sample)
        text, info = env.reset(seed=seed, options={"index": index})
        trajectory = Trajectory(
            task_id=task.id,
            sample=sample,
            env_id=source.env_id,
            question=task.question,
            answers=list(task.answers),
            prompt=text,
            seed=seed,
            env_kwargs=source.env_kwargs,
            policy=self.policy_info,
            meta={"index": index, "task": _as_stored(task.meta)},
        )
        observation = Observation(text, info["messages"], task, 0, seed, source.stop, (text,))
        elapsed = time.perf_counter() - began
        self.summary.env_seconds += elapsed
        return _Episode(source, env, index, trajectory, observation, began, env_seconds=elapsed)

    def _round(self, live: list[_Episode]) -> list[_Episode]:
        """One policy call for every live episode, then one env step each; returns the finished."""
        began = time.perf_counter()
        actions = self.policy.act([episode.observation for episode in live])
        policy_seconds = time.perf_counter() - began
        if not isinstance(actions, list | tuple) or len(actions) != len(live):
            count = len(actions) if isinstance(actions, list | tuple) else type(actions).__name__
            raise ValueError(f"policy returned {count} actions for {len(live)} observations.")
        self.summary.policy_seconds += policy_seconds
        self.summary.actions += len(live)
        began = time.perf_counter()
        parsed = [e.env.parse_action(action) for e, action in zip(live, actions, strict=True)]
        results = _serve_tool_calls(live, parsed)
        share = policy_seconds / len(live)
        finished = [
            episode
            for episode, action, read in zip(live, actions, parsed, strict=True)
            if self._step(episode, action, read, results.get(id(episode)), share)
        ]
        self.summary.env_seconds += time.perf_counter() - began
        return finished

    def _step(
        self,
        episode: _Episode,
        action: str,
        parsed: Action,
        tool_result: ToolResult | None,
        policy_seconds: float,
    ) -> bool:
        began = time.perf_counter()
        text, reward, terminated, truncated, info = episode.env.apply(action, parsed, tool_result)
        episode.env_seconds += time.perf_counter() - began
        episode.policy_seconds += policy_seconds
        trajectory = episode.trajectory
        trajectory.steps.append(Step.from_info(info, reward))
        if terminated or truncated:
            trajectory.terminated, trajectory.truncated = terminated, truncated
            trajectory.score = float(reward) if terminated else 0.0
            trajectory.metrics = _answer_metrics(info) if terminated else {}
            return True
        previous = episode.observation
        segments = (*previous.segments, trajectory.steps[-1].action, trajectory.steps[-1].feedback)
        episode.observation = Observation(
            text,
            info["messages"],
            previous.task,
            previous.step + 1,
            previous.seed,
            previous.stop,
            segments if "".join(segments) == text else (),
        )
        return False

    def _finish(self, finished: list[_Episode]) -> None:
        now = time.perf_counter()
        trajectories = []
        for episode in finished:
            episode.trajectory.timing = {
                "policy_seconds": episode.policy_seconds,
                "env_seconds": episode.env_seconds,
                "wall_seconds": now - episode.started,
            }
            episode.source.free.append(episode.env)
            trajectories.append(episode.trajectory)
        if self.store is not None and trajectories:
            began = time.perf_counter()
            self.store.append(trajectories)
            self.summary.store_seconds += time.perf_counter() - began
        self.summary.episodes += len(trajectories)
        self.summary.score += sum(t.score for t in trajectories)
        stats = getattr(self.policy, "stats", None)
        if stats is not None:
            self.summary.completion_tokens = stats.completion_tokens - self._tokens_before
        if self.keep:
            self.trajectories.extend(trajectories)


def episode_keys(
    envs: EnvSource | Sequence[EnvSource], *, samples: int = 1, num_tasks: int | None = None
) -> list[tuple[str, int]]:
    """The ``(task_id, sample)`` of every episode ``rollout`` runs with these arguments."""
    return [
        (source.env.tasks[index].id, sample)
        for source, index, sample in _episodes(_sources(envs), samples, num_tasks)
    ]


def _sources(envs: EnvSource | Sequence[EnvSource]) -> list[_Source]:
    items = [envs] if isinstance(envs, str | gym.Env) else list(envs)
    if not items:
        raise ValueError("rollout needs at least one env.")
    sources, owners = [], {}
    for item in items:
        env = gym.make(item) if isinstance(item, str) else item
        base = env.unwrapped
        if not isinstance(base, SwirlEnv):
            raise TypeError(
                f"{item!r} is not a SwirlEnv (its unwrapped env is {type(base).__name__})."
            )
        spec = env.spec
        env_id = spec.id if spec is not None else type(base).__name__
        for task in base.tasks:
            if task.id in owners:
                raise ValueError(
                    f"task id {task.id!r} occurs twice (in {owners[task.id]} and {env_id}); "
                    f"episodes are keyed by task id."
                )
            owners[task.id] = env_id
        kwargs = stored_env_settings(env)
        sources.append(_Source(base, env_id, kwargs, _stop_tags(base.tools)))
    return sources


def _as_stored(value: Any) -> Any:
    """``value`` as JSON gives it back (tuples become lists): stored and live records then match."""
    if isinstance(value, dict):
        return {key: _as_stored(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_as_stored(item) for item in value]
    return value


def _json_safe(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Env settings as stored: JSON values as they are, anything else (a judge) as its repr."""
    safe = {}
    for key, value in kwargs.items():
        try:
            json.dumps(value)
            safe[key] = _as_stored(value)
        except (TypeError, ValueError):
            safe[key] = repr(value)
    return safe


def _stop_tags(tools: Sequence[Tool]) -> tuple[str, ...]:
    return tuple(f"</{tool.tag}>" for tool in tools) + (f"</{ANSWER_TAG}>",)


def _episodes(
    sources: list[_Source], samples: int, num_tasks: int | None
) -> Iterator[tuple[_Source, int, int]]:
    for source in sources:
        count = (
            len(source.env.tasks) if num_tasks is None else min(num_tasks, len(source.env.tasks))
        )
        for index in range(count):
            for sample in range(samples):
                yield source, index, sample


def _answer_metrics(info: dict[str, Any]) -> dict[str, float]:
    """The numbers in the answer's ``info["metrics"]`` (em, f1, ...), as a trajectory keeps them."""
    return {
        key: float(value)
        for key, value in info["metrics"].items()
        if isinstance(value, int | float)
    }


def _serve_tool_calls(live: list[_Episode], parsed: Sequence[Action]) -> dict[int, ToolResult]:
    """Serve the round's calls to each tool with one ``Tool.call_many``.

    Returns:
        The result of each episode's call (keyed by the episode's ``id``). A tool whose
        batch fails or returns the wrong number of results is left out, so each of
        its envs runs the call itself and reports any error as it would alone.
    """
    calls: dict[int, tuple[Tool, list[tuple[_Episode, str]]]] = {}
    for episode, action in zip(live, parsed, strict=True):
        if isinstance(action, ToolCall):
            tool = episode.env.tool(action.name)
            calls.setdefault(id(tool), (tool, []))[1].append((episode, action.argument))
    results: dict[int, ToolResult] = {}
    for tool, batch in calls.values():
        try:
            served = tool.call_many([(argument, episode.env.task) for episode, argument in batch])
        except Exception:  # noqa: BLE001 - each env then calls the tool itself and reports the error
            continue
        if len(served) != len(batch):
            continue
        for (episode, _), result in zip(batch, served, strict=True):
            results[id(episode)] = result
    return results


class _NoBar:
    def __enter__(self):
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _progress_bar(total: int, enabled: bool):
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="ep", desc="rollout", dynamic_ncols=True)


def _update_bar(bar, summary: RolloutSummary, finished: int) -> None:
    if bar is None:
        return
    bar.set_postfix(
        {"tok/s": f"{summary.tokens_per_second:.0f}", "acc": f"{summary.accuracy:.3f}"},
        refresh=False,
    )
    bar.update(finished)


def stored_env_settings(env: gym.Env) -> dict[str, Any]:
    """An env's settings as its trajectories record them (``env_kwargs``)."""
    return _json_safe(dict(env.spec.kwargs)) if env.spec is not None else {}

"""Programmatic judges: verdicts checked against the task itself, the truth for other judges.

Outcome (every env): the final answer is GOOD when the env's scorer gives it 1
(exact match after normalisation for QA, numeric equality for math); no answer is BAD.

Process, rule ``"gold_path"`` (tasks that declare ``Task.unique_sound_path``: their
gold path is the expert's unique solution, as in SynthMath and SynthHop). Let the
history be the transcript after the question. An earlier call *counts* when the env
answered it (its ``ARGUMENT -> result`` line follows it). Then a step is GOOD when:

- a calculator call evaluates (with the env's safe calculator) to the value of a
  gold calculator step that is not done yet (no counted call produced that value)
  and whose inputs are in the state: every number in the gold expression that is
  the value of an earlier gold step was produced by a counted call or is stated in
  the question. So each operation must be computed in order, once; merging two
  steps into one expression, skipping ahead or repeating a step is BAD;
- a search call requests a gold search step that is not done yet (no counted
  query requested it) and whose input is in the state: the query contains the
  gold query's words (after answer normalisation), and those words occur in the
  question or the history. So each entity is searched once, after it is known;
- a final answer scores 1.

Process, rule ``"arithmetic"`` (GSM8K and other math data with many valid
solutions): a calculator call is GOOD when it evaluates without error; a final
answer is GOOD when it states the gold number.

Under both rules a malformed action (no call, two calls, an unknown tool) is BAD.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from swirl_agents.judges.base import (
    NO_ANSWER,
    Judgement,
    OutcomeQuery,
    ProcessQuery,
    hard_judgement,
)
from swirl_envs import Task
from swirl_envs.actions import FinalAnswer, ParseError, ToolCall, parse_action
from swirl_envs.scoring import Scorer, normalize_answer, qa_scores
from swirl_envs.tools.base import Tool
from swirl_envs.tools.calculator import CalculationError, Calculator, CalculatorLimits, evaluate

ProcessRule = Literal["gold_path", "arithmetic"]
RULE_VERSION = 2
"""Bumped whenever a rule changes, so cached programmatic verdicts are not reused."""

_NUMBER = re.compile(r"\d+(?:\.\d+)?")


@dataclass(frozen=True)
class _GoldStep:
    """One tool call of a gold path; ``value`` and ``needs`` only for calculator steps."""

    tool: str
    argument: str
    value: Any = None
    needs: tuple[int, ...] = ()


class ProgrammaticJudge:
    """Judges steps and answers by checking them against the task (see the module docstring).

    Args:
        tasks: Every task the trajectories may come from, by id.
        tools: The env's tools (action parsing needs their tags; the calculator's
            limits are reused).
        scorer: The env's answer scorer; an answer is good when its ``"score"`` is 1.
        process_rule: ``"gold_path"``, ``"arithmetic"``, or None when the tasks have
            no programmatic process rule (``judge_process`` then raises).
    """

    name = "programmatic"

    def __init__(
        self,
        tasks: Mapping[str, Task],
        tools: Sequence[Tool],
        *,
        scorer: Scorer = qa_scores,
        process_rule: ProcessRule | None = "gold_path",
    ):
        if process_rule not in ("gold_path", "arithmetic", None):
            raise ValueError(
                f"process_rule must be 'gold_path' or 'arithmetic', got {process_rule!r}"
            )
        self.tasks = tasks
        self.tools = list(tools)
        self.scorer = scorer
        self.process_rule = process_rule
        calculators = [tool for tool in self.tools if isinstance(tool, Calculator)]
        self._limits = calculators[0].limits if calculators else CalculatorLimits()
        self._gold: dict[str, list[_GoldStep]] = {}
        self._numbers: dict[str, list[Any]] = {}

    @classmethod
    def from_env(
        cls, env: Any, process_rule: ProcessRule | None | str = "auto"
    ) -> ProgrammaticJudge:
        """Build the judge for an env: its tasks, tools and scorer.

        Args:
            env: A ``SwirlEnv`` (wrapped or not).
            process_rule: ``"auto"`` picks ``"gold_path"`` when the env declares its
                gold paths the only sound ones (``env.unique_sound_path``: every task
                sets ``Task.unique_sound_path``), ``"arithmetic"`` for other envs
                with a calculator, and None otherwise.
        """
        env = getattr(env, "unwrapped", env)
        if process_rule == "auto":
            if env.unique_sound_path:
                process_rule = "gold_path"
            elif any(isinstance(tool, Calculator) for tool in env.tools):
                process_rule = "arithmetic"
            else:
                process_rule = None
        tasks = {task.id: task for task in env.tasks}
        return cls(tasks, env.tools, scorer=env.scorer, process_rule=process_rule)  # type: ignore[arg-type]

    def signature(self, kind: str) -> str:
        """The rule (or, for outcomes, the scorer) and the rules' version."""
        if kind == "process":
            rule = str(self.process_rule)
        else:
            rule = getattr(self.scorer, "__name__", type(self.scorer).__name__)
        return f"{kind}:{rule}:v{RULE_VERSION}"

    def judge_process(self, queries: Sequence[ProcessQuery]) -> list[Judgement]:
        """Judge each step by the process rule."""
        if self.process_rule is None:
            raise ValueError(
                "these tasks have no programmatic process rule (it exists for tasks that "
                "declare unique_sound_path, such as SynthMath and SynthHop, and for calculator "
                "tasks); judge steps with a model (hf:PATH or openai:URL)"
            )
        return [self._judge_step(query) for query in queries]

    def judge_outcome(self, queries: Sequence[OutcomeQuery]) -> list[Judgement]:
        """Judge each final answer with the env's scorer."""
        return [self._judge_answer(query.prediction, query.answers) for query in queries]

    # ---- rules -----------------------------------------------------------------------

    def _judge_step(self, query: ProcessQuery) -> Judgement:
        task = self._task(query.task_id)
        action = parse_action(query.action, self.tools)
        if isinstance(action, ParseError):
            return self._verdict(False, f"malformed action: {action.message}")
        if isinstance(action, FinalAnswer):
            return self._judge_answer(action.text, task.answers)
        if self.process_rule == "arithmetic":
            return self._judge_arithmetic(action)
        return self._judge_gold_path(action, task, query.state)

    def _judge_answer(self, prediction: str | None, answers: Sequence[str]) -> Judgement:
        if prediction is None:
            return self._verdict(False, NO_ANSWER)
        score = float(self.scorer(prediction, list(answers))["score"])
        return Judgement(score >= 1.0, score, f"answer scores {score:g}", self.name)

    def _judge_arithmetic(self, call: ToolCall) -> Judgement:
        if call.name != Calculator.name:
            return self._verdict(None, f"no arithmetic rule for the {call.name} tool")
        try:
            value = evaluate(call.argument, self._limits)
        except CalculationError as error:
            return self._verdict(False, f"calculator error: {error}")
        return self._verdict(True, f"valid arithmetic: {call.argument} = {value}")

    def _judge_gold_path(self, call: ToolCall, task: Task, state: str) -> Judgement:
        steps = self._gold_steps(task)
        history = _history(state, task)
        done = self._replay(steps, task, history)
        if call.name == Calculator.name:
            try:
                value = evaluate(call.argument, self._limits)
            except CalculationError as error:
                return self._verdict(False, f"calculator error: {error}")
            what = f"{call.argument} = {value}"
        else:
            value, what = None, f"query {call.argument!r}"
        matches = self._matches(call.name, call.argument, value, steps)
        if not matches:
            return self._verdict(False, f"{what} is not a step of the gold path")
        ready = self._first_ready(matches, steps, done, task, history)
        if ready is not None:
            return self._verdict(True, f"{what} is gold step {ready + 1} of {len(steps)}")
        repeated = [i for i in matches if done[i]]
        if repeated:
            return self._verdict(False, f"{what} repeats gold step {repeated[0] + 1}, already done")
        return self._verdict(
            False, f"{what} is gold step {matches[0] + 1}, but its inputs are unknown"
        )

    def _replay(self, steps: list[_GoldStep], task: Task, history: str) -> list[bool]:
        """Which gold steps the counted calls in ``history`` did, judging them in order.

        A call does the first matching step that is ready at that point, so a value
        that recurs (``9 * 3 = 27`` then ``81 / 3 = 27``) does each step in turn.
        """
        done = [False] * len(steps)
        for position, tool, argument in _answered_calls(history, self.tools):
            value = None
            if tool == Calculator.name:
                try:
                    value = evaluate(argument, self._limits)
                except CalculationError:
                    continue
            matches = self._matches(tool, argument, value, steps)
            ready = self._first_ready(matches, steps, done, task, history[:position])
            if ready is not None:
                done[ready] = True
        return done

    def _matches(self, tool: str, argument: str, value: Any, steps: list[_GoldStep]) -> list[int]:
        """Gold steps the call would do: same calculator value, or a query naming the step."""
        if tool == Calculator.name:
            return [i for i, s in enumerate(steps) if s.tool == tool and _same(s.value, value)]
        query = normalize_answer(argument)
        return [
            i
            for i, s in enumerate(steps)
            if s.tool == tool and _contains(query, normalize_answer(s.argument))
        ]

    def _first_ready(
        self, matches: list[int], steps: list[_GoldStep], done: list[bool], task: Task, history: str
    ) -> int | None:
        """The first of ``matches`` not done yet whose inputs the question or history give."""
        for i in matches:
            if done[i]:
                continue
            step = steps[i]
            if step.tool == Calculator.name:
                known = self._question_numbers(task)
                ready = all(
                    done[j] or any(_same(steps[j].value, n) for n in known) for j in step.needs
                )
            else:
                text = normalize_answer(task.question + history)
                ready = _contains(text, normalize_answer(step.argument))
            if ready:
                return i
        return None

    def _question_numbers(self, task: Task) -> list[Any]:
        if task.id not in self._numbers:
            self._numbers[task.id] = [evaluate(n) for n in _NUMBER.findall(task.question)]
        return self._numbers[task.id]

    def _gold_steps(self, task: Task) -> list[_GoldStep]:
        if task.id not in self._gold:
            self._gold[task.id] = self._parse_gold_path(task)
        return self._gold[task.id]

    def _parse_gold_path(self, task: Task) -> list[_GoldStep]:
        steps: list[_GoldStep] = []
        for number, text in enumerate(task.gold_path, start=1):
            action = parse_action(text, self.tools)
            if isinstance(action, ParseError):
                raise ValueError(
                    f"task {task.id}: gold step {number} is malformed: {action.message}"
                )
            if not isinstance(action, ToolCall):
                continue
            if action.name != Calculator.name:
                steps.append(_GoldStep(action.name, action.argument))
                continue
            try:
                value = evaluate(action.argument, self._limits)
            except CalculationError as error:
                raise ValueError(f"task {task.id}: gold step {number} fails: {error}") from error
            literals = [evaluate(n, self._limits) for n in _NUMBER.findall(action.argument)]
            needs = tuple(
                max(j for j, earlier in enumerate(steps) if _same(earlier.value, literal))
                for literal in literals
                if any(_same(earlier.value, literal) for earlier in steps)
            )
            steps.append(_GoldStep(action.name, action.argument, value, needs))
        return steps

    def _task(self, task_id: str) -> Task:
        try:
            return self.tasks[task_id]
        except KeyError:
            raise ValueError(
                f"task {task_id!r} is not among the programmatic judge's {len(self.tasks)} tasks; "
                "build the judge from the env (and settings) the trajectories came from"
            ) from None

    def _verdict(self, good: bool | None, reason: str) -> Judgement:
        return hard_judgement(good, reason, self.name)


def _history(state: str, task: Task) -> str:
    """The transcript after the question (the system prompt's examples are not calls)."""
    start = state.find(task.question)
    return state[start + len(task.question) :] if start >= 0 else state


def _answered_calls(history: str, tools: Sequence[Tool]) -> list[tuple[int, str, str]]:
    """``(position, tool, argument)`` of each call in ``history`` the env answered, in order.

    A call counts when its ``ARGUMENT -> `` result line follows it; an action the env
    rejected (two calls, say) has an error line instead and does nothing.
    """
    calls = []
    for tool in tools:
        tag = re.escape(tool.tag)
        for match in re.finditer(rf"<{tag}>(.*?)</{tag}>", history, re.S):
            argument = match.group(1).strip()
            if argument and f"\n{argument} -> " in history[match.end() :]:
                calls.append((match.start(), tool.name, argument))
    return sorted(calls)


def _contains(text: str, words: str) -> bool:
    """True when ``words`` occur in ``text`` as whole words (both normalised)."""
    return bool(words) and f" {words} " in f" {text} "


def _same(a: Any, b: Any) -> bool:
    """Equal values: exactly, or within 1e-9 relative for approximate (float) results."""
    if a is None or b is None:
        return False
    if a == b:
        return True
    try:
        x, y = float(a), float(b)
    except (TypeError, OverflowError):
        return False
    return abs(x - y) <= 1e-9 * max(1.0, abs(x), abs(y))

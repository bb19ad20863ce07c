"""The base text environment: a list of tasks, a set of tools, a scorer.

Observation: the whole transcript so far (SWiRL's state s_k). Action: text that
ends in one tool call or a final answer. Reward: 0 until the answer, then the
task's headline score. ``terminated`` on an answer, ``truncated`` when the step
budget runs out. Model text never raises: a malformed action is answered with an
error line, and the step counts.

The transcript is a concatenation of segments, which is what makes SWiRL's
decomposition exact: ``prompt + action_1 + feedback_1 + ... + action_k`` where each
``feedback`` is the text the env appended after that action (``info["feedback"]``).

A step's ``info`` holds ``messages`` (the transcript as chat messages), ``task_id``,
``step``, ``action`` (as recorded), ``feedback``, ``tool`` and ``tool_input``,
``parse_error``, ``answer``, and ``metrics``: the answer's scores (``score``, the
reward, then e.g. ``em``, ``f1``; ``judge`` with a judge), empty before the answer.
The answer's scores are also flat keys of ``info``, as they were before ``metrics``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym

from swirl_envs.actions import (
    ANSWER_SCHEMA,
    Action,
    FinalAnswer,
    ParseError,
    ToolCall,
    sanitize_action,
)
from swirl_envs.actions import parse_action as parse_text
from swirl_envs.scoring import Scorer, Scores, qa_scores
from swirl_envs.spaces import TranscriptSpace
from swirl_envs.task import Task
from swirl_envs.tools.base import Tool, ToolResult
from swirl_envs.transcript import first_observation, transcript_messages

AnswerJudge = Callable[[str, Sequence[str], str], float]
"""A judge of final answers: ``(question, gold answers, prediction) -> score in [0, 1]``."""

StepResult = tuple[str, float, bool, bool, dict[str, Any]]
"""What ``step`` returns: observation, reward, terminated, truncated, info."""

_ERROR_BUDGET = 1024


class SwirlEnv(gym.Env[str, str]):
    """A multi-step tool-use environment over a fixed list of tasks.

    Args:
        tasks: The tasks an episode is drawn from.
        tools: The tools the agent may call (the final answer is always available).
        system_prompt: Instructions shown first; ``{max_steps}`` is filled in.
        max_steps: Step budget; the episode is truncated after this many actions.
        scorer: Maps ``(prediction, gold answers)`` to metrics with a ``"score"`` key.
        judge: Optional answer judge (e.g. an LLM judge); when given, its score is
            the reward and the scorer's metrics stay in ``info["metrics"]``.
        render_mode: ``"ansi"`` (return the transcript) or ``"human"`` (print it).
        max_action_chars: Longer actions are an error and are cut in the transcript.
        max_result_chars: Tool results are cut to this many characters.
    """

    metadata = {"render_modes": ["ansi", "human"], "render_fps": 1}
    eval_split = "test"
    """The held-out split that evaluation uses by default (``dev`` where a dataset's test
    answers are not published)."""

    def __init__(
        self,
        tasks: Sequence[Task],
        tools: Sequence[Tool],
        *,
        system_prompt: str,
        max_steps: int,
        scorer: Scorer = qa_scores,
        judge: AnswerJudge | None = None,
        render_mode: str | None = None,
        max_action_chars: int = 8192,
        max_result_chars: int = 2048,
    ):
        if not tasks:
            raise ValueError("SwirlEnv needs at least one task.")
        if max_steps < 1:
            raise ValueError(f"max_steps must be at least 1, got {max_steps}.")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']}.")
        self.tasks = list(tasks)
        self.tools = list(tools)
        self.max_steps = max_steps
        self.system_prompt = system_prompt.format(max_steps=max_steps)
        self.scorer = scorer
        self.judge = judge
        self.render_mode = render_mode
        self.max_action_chars = max_action_chars
        self.max_result_chars = max_result_chars
        longest_question = max(len(task.question) for task in self.tasks)
        per_step = 2 * max_action_chars + max_result_chars + _ERROR_BUDGET
        self.observation_space = TranscriptSpace(
            len(self.system_prompt) + longest_question + 64 + max_steps * per_step
        )
        self.action_space = TranscriptSpace(max_action_chars)
        self._task: Task | None = None
        self._prompt = ""
        self._transcript = ""
        self._history: list[tuple[str, str]] = []
        self._steps = 0
        self._done = False

    @property
    def task(self) -> Task:
        """The task of the current episode."""
        if self._task is None:
            raise RuntimeError("Call reset() before using the environment.")
        return self._task

    @property
    def unique_sound_path(self) -> bool:
        """Whether every task declares its gold path the only sound one.

        True when each task sets ``Task.unique_sound_path``. An agent-side judge reads
        this, not the env's class, to decide whether steps can be graded against the
        gold path.
        """
        return all(task.unique_sound_path for task in self.tasks)

    @property
    def tool_schemas(self) -> list[dict[str, Any]]:
        """OpenAI function-calling schemas of every tool, the final answer included."""
        return [tool.schema for tool in self.tools] + [ANSWER_SCHEMA]

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        """Start an episode on ``options["index"]``, or on a task drawn with the env's RNG."""
        super().reset(seed=seed)
        index = (options or {}).get("index")
        if index is None:
            index = int(self.np_random.integers(len(self.tasks)))
        if not isinstance(index, int) or not 0 <= index < len(self.tasks):
            raise ValueError(f"options['index'] must be an int in [0, {len(self.tasks)}).")
        self._task = self.tasks[index]
        self._steps, self._done = 0, False
        self._prompt = first_observation(self.system_prompt, self._task.question)
        self._transcript, self._history = self._prompt, []
        info = {"messages": self._messages(), "task_id": self._task.id, "index": index}
        return self._transcript, info

    def step(self, action: str) -> StepResult:
        """Take one action: run its tool call or score its answer, and extend the transcript.

        The same as ``apply(action, parse_action(action))``.
        """
        return self.apply(action, self.parse_action(action))

    def parse_action(self, action: str) -> Action:
        """Read an action against this env's tools: the first half of ``step``; changes nothing.

        A caller that runs tool calls itself (the rollout engine serves the search
        calls of many envs in one batch) parses here, then hands each result to ``apply``.
        """
        return parse_text(action, self.tools, self.max_action_chars)

    def apply(
        self, action: str, parsed: Action, tool_result: ToolResult | None = None
    ) -> StepResult:
        """Take a parsed action (the second half of ``step``) and extend the transcript.

        A tool call gets ``tool_result`` or else runs its tool; an answer is scored.

        Args:
            action: The action as the policy wrote it (recorded in the transcript).
            parsed: ``self.parse_action(action)``.
            tool_result: The result of ``parsed``'s tool call when the caller already
                ran it (e.g. one batched call for many envs); None runs the tool here.

        Raises:
            RuntimeError: The episode is over or never started.
            ValueError: ``tool_result`` is given for an action that is not a tool call.
        """
        if self._task is None or self._done:
            raise RuntimeError("The episode is over (or never started); call reset().")
        if tool_result is not None and not isinstance(parsed, ToolCall):
            raise ValueError(f"a tool result was given for a {type(parsed).__name__}.")
        self._steps += 1
        recorded = sanitize_action(action if isinstance(action, str) else "", self.max_action_chars)
        reward, terminated, scores, feedback = 0.0, False, {}, ""
        if isinstance(parsed, FinalAnswer):
            scores = self.score_answer(self._task, parsed.text)
            reward, terminated = scores["score"], True
        elif isinstance(parsed, ToolCall):
            feedback = self._tool_feedback(parsed, tool_result)
        else:
            feedback = f"\nError: {parsed.message}\n"
        self._append(recorded, feedback)
        truncated = self._steps >= self.max_steps and not terminated
        self._done = terminated or truncated
        info = self._step_info(parsed, recorded, feedback, scores)
        if self.render_mode == "human":
            self.render()
        return self._transcript, reward, terminated, truncated, info

    def score_answer(self, task: Task, prediction: str) -> Scores:
        """Score a final answer; the judge, when set, decides the headline score."""
        scores = dict(self.scorer(prediction, task.answers))
        if self.judge is not None:
            scores["judge"] = float(self.judge(task.question, task.answers, prediction))
            scores["score"] = scores["judge"]
        return scores

    def render(self) -> str | None:
        """Return (``"ansi"``) or print (``"human"``) the transcript."""
        if self.render_mode == "ansi":
            return self._transcript
        if self.render_mode == "human":
            print(self._transcript)
        return None

    def tool(self, name: str) -> Tool:
        """The tool a ``ToolCall`` named ``name`` calls (``parse_action`` only makes known ones)."""
        found = next((tool for tool in self.tools if tool.name == name), None)
        if found is None:
            raise KeyError(f"no tool named {name!r}; this env has {[t.name for t in self.tools]}.")
        return found

    def _tool_feedback(self, call: ToolCall, result: ToolResult | None) -> str:
        tool = self.tool(call.name) if result is None else None
        try:
            text = (result if tool is None else tool(call.argument, self.task)).text
        except Exception as error:  # a tool bug must not end the agent's episode
            text = f"Error: the {call.name} tool failed ({type(error).__name__})."
        return f"\n{call.argument} -> {text[: self.max_result_chars]}\n"

    def _append(self, action: str, feedback: str) -> None:
        self._transcript += action + feedback
        self._history.append((action, feedback))

    def _messages(self) -> list[dict[str, str]]:
        return transcript_messages(self._prompt, self.task.question, self._history)

    def _step_info(
        self,
        parsed: ToolCall | FinalAnswer | ParseError,
        action: str,
        feedback: str,
        scores: Scores,
    ) -> dict[str, Any]:
        info: dict[str, Any] = {
            "messages": self._messages(),
            "task_id": self.task.id,
            "step": self._steps,
            "action": action,
            "feedback": feedback,
            "tool": parsed.name if isinstance(parsed, ToolCall) else None,
            "tool_input": parsed.argument if isinstance(parsed, ToolCall) else None,
            "parse_error": parsed.message if isinstance(parsed, ParseError) else None,
            "answer": parsed.text if isinstance(parsed, FinalAnswer) else None,
            "metrics": dict(scores),
        }
        info.update(scores)  # the same scores as flat keys, for code written before ``metrics``
        return info

"""The trajectory record: one episode, stored as one JSONL line.

A trajectory keeps the transcript as segments (``prompt``, then each step's
``action`` and the ``feedback`` the env appended after it), so every SWiRL state
is exact and cheap: ``state(k) = prompt + sum(action_i + feedback_i for i < k)``.
The full transcript is ``state(K)`` plus nothing: the last feedback is empty after
a final answer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

SCHEMA_VERSION = 1


@dataclass
class Step:
    """One action and what the env answered.

    Attributes:
        action: The action text exactly as recorded in the transcript.
        feedback: Text the env appended after the action (tool result or error line).
        tool: Name of the tool called, if the action was a tool call.
        tool_input: The tool's argument, if any.
        parse_error: Why the action was malformed, if it was.
        answer: The final answer, if the action gave one.
        reward: The env's reward for this step (non-zero only on the answer).
    """

    action: str
    feedback: str = ""
    tool: str | None = None
    tool_input: str | None = None
    parse_error: str | None = None
    answer: str | None = None
    reward: float = 0.0

    @classmethod
    def from_info(cls, info: dict[str, Any], reward: float) -> Step:
        """Build a step from the ``info`` dict a ``SwirlEnv.step`` returned."""
        return cls(
            action=info["action"],
            feedback=info["feedback"],
            tool=info.get("tool"),
            tool_input=info.get("tool_input"),
            parse_error=info.get("parse_error"),
            answer=info.get("answer"),
            reward=float(reward),
        )


@dataclass
class Trajectory:
    """One episode of one policy on one task.

    Attributes:
        task_id: The task's id; with ``sample`` it identifies the episode.
        sample: Which of the k samples per task this is.
        env_id: The gymnasium id (or class name) of the env.
        question: The question asked.
        answers: Gold answers (for outcome judges and scoring).
        prompt: The first observation (system prompt and question).
        steps: Every action, in order.
        score: The final reward (0 if the episode was truncated).
        metrics: The scorer's metrics of the final answer (em, f1, ...).
        terminated: True if the agent answered.
        truncated: True if the step budget ran out.
        seed: The seed of the episode's sampling.
        env_kwargs: Settings the env was made with.
        policy: The policy's name and settings.
        timing: Seconds spent in the policy, the env and in total.
        meta: Free-form extras (task metadata, judge results, ...).
    """

    task_id: str
    sample: int
    env_id: str
    question: str
    answers: list[str]
    prompt: str
    steps: list[Step] = field(default_factory=list)
    score: float = 0.0
    metrics: dict[str, float] = field(default_factory=dict)
    terminated: bool = False
    truncated: bool = False
    seed: int | None = None
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    policy: dict[str, Any] = field(default_factory=dict)
    timing: dict[str, float] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    @property
    def key(self) -> tuple[str, int]:
        """``(task_id, sample)``: the identity of this episode in a store."""
        return (self.task_id, self.sample)

    def state(self, k: int) -> str:
        """SWiRL's state s_k: the transcript before action ``k`` (0-based)."""
        if not 0 <= k <= len(self.steps):
            raise IndexError(f"state index {k} out of range for {len(self.steps)} steps")
        return self.prompt + "".join(step.action + step.feedback for step in self.steps[:k])

    @property
    def transcript(self) -> str:
        """The whole transcript: the prompt and every action and feedback."""
        return self.state(len(self.steps))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the store's line format)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Trajectory:
        """Rebuild from ``to_dict`` output; raises ``ValueError`` on a wrong schema."""
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ValueError(f"unsupported trajectory schema_version {version!r}")
        fields = dict(data)
        fields["steps"] = [Step(**step) for step in data.get("steps", [])]
        try:
            return cls(**fields)
        except TypeError as error:
            raise ValueError(f"malformed trajectory record: {error}") from error

"""What every judge shares: the queries it answers, the judgement it returns, its interface.

A judge (SWiRL's generative reward model) answers two kinds of question:

- process: is action a_k a reasonable next step given the state s_k? It never sees
  the gold answer, so it can score actions sampled online as well as logged ones;
- outcome: does the trajectory's final answer match the gold answer?

Judges are batched: each method takes a sequence of queries and returns one
``Judgement`` per query, in order, so a model backend can fill a forward pass and an
endpoint backend can run requests concurrently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class ProcessQuery:
    """Judge one step: is ``action`` reasonable given ``state``?

    Attributes:
        task_id: The task the trajectory solves (programmatic judges look it up).
        step: The step's 0-based index k.
        state: SWiRL's s_k, the transcript before the action (``Trajectory.state(k)``).
        action: The action a_k exactly as the policy wrote it.
        question: The question, for prompts that name it; when empty, model judges
            read the transcript's ``Question:`` line.
    """

    task_id: str
    step: int
    state: str
    action: str
    question: str = ""


@dataclass(frozen=True)
class OutcomeQuery:
    """Judge a final answer: does ``prediction`` match one of ``answers``?

    Attributes:
        task_id: The task the trajectory solves.
        question: The question asked.
        answers: The gold answer first, then accepted aliases.
        prediction: The trajectory's final answer; ``None`` when it never answered.
    """

    task_id: str
    question: str
    answers: Sequence[str]
    prediction: str | None


@dataclass(frozen=True)
class Judgement:
    """One verdict of one judge.

    Attributes:
        good: True for GOOD/YES, False for BAD/NO, None when the judge's output could
            not be read as a verdict (recorded and counted, never guessed).
        score: A score in [0, 1]: a soft score such as P(GOOD) where the backend has
            one, 1.0/0.0 for a hard verdict, None when unparseable.
        raw: The judge's own text, or a short reason for programmatic verdicts.
        judge: The name of the judge that gave it.
    """

    good: bool | None
    score: float | None
    raw: str
    judge: str

    @property
    def parsed(self) -> bool:
        """True when the judgement holds a verdict."""
        return self.good is not None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (stored in ``Trajectory.meta`` and in the cache)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Judgement:
        """Rebuild from ``to_dict`` output; raises ``ValueError`` on a malformed record."""
        try:
            good, score, raw, judge = data["good"], data["score"], data["raw"], data["judge"]
        except (KeyError, TypeError) as error:
            raise ValueError(f"malformed judgement record {data!r}") from error
        if good is not None and not isinstance(good, bool):
            raise ValueError(f"judgement 'good' must be true, false or null, got {good!r}")
        if score is not None and not isinstance(score, int | float):
            raise ValueError(f"judgement 'score' must be a number or null, got {score!r}")
        return cls(good, None if score is None else float(score), str(raw), str(judge))


NO_ANSWER = "the trajectory gave no final answer"
"""The reason of the BAD outcome verdict every judge gives a trajectory without an answer."""


def hard_judgement(good: bool | None, raw: str, judge: str) -> Judgement:
    """A judgement without a soft score: score 1.0/0.0, or None when unparseable."""
    return Judgement(good, None if good is None else float(good), raw, judge)


@runtime_checkable
class Judge(Protocol):
    """A reward model for SWiRL: judges steps (process) and final answers (outcome).

    Attributes:
        name: Identifies the judge in judgements and cache keys, e.g.
            ``"programmatic"``, ``"hf:/models/judge"``, ``"openai:http://host/v1#model"``.
    """

    name: str

    def judge_process(self, queries: Sequence[ProcessQuery]) -> list[Judgement]:
        """Judge each step, without the gold answer; one judgement per query, in order."""
        ...

    def judge_outcome(self, queries: Sequence[OutcomeQuery]) -> list[Judgement]:
        """Judge each final answer against the gold answers; one judgement per query."""
        ...

    def signature(self, kind: str) -> str:
        """Everything besides the inputs that decides a ``kind`` verdict (prompt, settings).

        The cache keys judgements by ``name``, this signature and the query, so a
        changed prompt or setting is a cache miss, never a stale hit.
        """
        ...

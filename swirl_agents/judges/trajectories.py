"""Judge whole trajectories: every step by a process judge, the final answer by an outcome judge.

The judgements travel inside the trajectory record, in
``Trajectory.meta["judgements"]``, so a judged file is still a trajectory store that
``load_trajectories`` reads and ``TrajectoryStore`` appends to::

    "judgements": {
        "process": [{"good": true, "score": 0.93, "raw": "...", "judge": "hf:..."}, ...],
        "outcome": {"good": false, "score": 0.0, "raw": "...", "judge": "programmatic"}
    }

``process`` holds one judgement per step, in step order; either entry is ``null``
when that kind was not judged.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from swirl_agents.judges.base import Judge, Judgement, OutcomeQuery, ProcessQuery
from swirl_agents.judges.cache import CachedJudge, JudgementCache
from swirl_agents.trajectory import Trajectory

META_KEY = "judgements"


@dataclass
class JudgedTrajectory:
    """A trajectory with its judgements.

    Attributes:
        trajectory: The episode (its ``meta`` is not modified in place).
        process: One judgement per step, or None when steps were not judged.
        outcome: The final answer's judgement, or None when it was not judged.
    """

    trajectory: Trajectory
    process: list[Judgement] | None = None
    outcome: Judgement | None = None

    @property
    def step_scores(self) -> list[float | None]:
        """Each step's process score (None where unparseable); the trainer's step rewards."""
        if self.process is None:
            raise ValueError(f"episode {self.trajectory.key} has no process judgements")
        return [judgement.score for judgement in self.process]

    def to_trajectory(self) -> Trajectory:
        """A copy of the trajectory with the judgements stored in ``meta["judgements"]``."""
        record: dict[str, Any] = {
            "process": None if self.process is None else [j.to_dict() for j in self.process],
            "outcome": None if self.outcome is None else self.outcome.to_dict(),
        }
        return replace(self.trajectory, meta={**self.trajectory.meta, META_KEY: record})

    @classmethod
    def from_trajectory(cls, trajectory: Trajectory, *, required: bool = True) -> JudgedTrajectory:
        """Read the judgements stored in ``trajectory.meta``.

        Args:
            trajectory: A trajectory, judged or not.
            required: Raise when there are no judgements (otherwise return none).

        Raises:
            ValueError: The judgements are missing (when required) or malformed, or
                their count differs from the number of steps.
        """
        record = trajectory.meta.get(META_KEY)
        if record is None:
            if required:
                raise ValueError(f"episode {trajectory.key} has not been judged")
            return cls(trajectory)
        if not isinstance(record, dict):
            raise ValueError(f"episode {trajectory.key}: meta['{META_KEY}'] must be an object")
        process, outcome = record.get("process"), record.get("outcome")
        if process is not None:
            if not isinstance(process, list) or len(process) != len(trajectory.steps):
                raise ValueError(
                    f"episode {trajectory.key}: needs one process judgement per step "
                    f"({len(trajectory.steps)})"
                )
            process = [Judgement.from_dict(item) for item in process]
        outcome = None if outcome is None else Judgement.from_dict(outcome)
        return cls(trajectory, process, outcome)


def process_queries(trajectory: Trajectory) -> list[ProcessQuery]:
    """One query per step: (s_k, a_k), SWiRL's decomposition of the episode."""
    return [
        ProcessQuery(trajectory.task_id, k, trajectory.state(k), step.action, trajectory.question)
        for k, step in enumerate(trajectory.steps)
    ]


def outcome_query(trajectory: Trajectory) -> OutcomeQuery:
    """The final answer (None when the episode never answered) against the gold answers."""
    answers = [step.answer for step in trajectory.steps if step.answer is not None]
    prediction = answers[-1] if answers else None
    return OutcomeQuery(
        trajectory.task_id, trajectory.question, tuple(trajectory.answers), prediction
    )


def judge_trajectories(
    trajectories: Iterable[Trajectory],
    process_judge: Judge | None = None,
    outcome_judge: Judge | None = None,
    cache: JudgementCache | None = None,
) -> list[JudgedTrajectory]:
    """Judge every step and/or every final answer, in one batch per kind.

    Judgements already stored in a trajectory are kept for a kind that is not
    judged now, so an outcome judge can be added to a process-judged file.

    Args:
        trajectories: The episodes.
        process_judge: Judges each (s_k, a_k); None keeps any stored process judgements.
        outcome_judge: Judges each final answer; None keeps any stored outcome judgement.
        cache: Answer repeated queries from (and record new ones in) this cache.

    Raises:
        ValueError: Both judges are None.
    """
    if process_judge is None and outcome_judge is None:
        raise ValueError("give a process judge, an outcome judge, or both")
    if cache is not None:
        process_judge = process_judge and CachedJudge(process_judge, cache)
        outcome_judge = outcome_judge and CachedJudge(outcome_judge, cache)
    judged = [JudgedTrajectory.from_trajectory(t, required=False) for t in trajectories]
    if process_judge is not None:
        per_trajectory = [process_queries(item.trajectory) for item in judged]
        flat: Sequence[ProcessQuery] = [query for queries in per_trajectory for query in queries]
        verdicts = iter(process_judge.judge_process(flat))
        for item, queries in zip(judged, per_trajectory, strict=True):
            item.process = [next(verdicts) for _ in queries]
    if outcome_judge is not None:
        verdicts = iter(outcome_judge.judge_outcome([outcome_query(i.trajectory) for i in judged]))
        for item in judged:
            item.outcome = next(verdicts)
    return judged

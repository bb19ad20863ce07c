"""SWiRL's data filters: which judged trajectories train the policy.

Filters act on whole trajectories, as in the paper (a kept trajectory contributes
all of its K sub-trajectories):

- ``none``: keep everything;
- ``process``: keep a trajectory only if every step is judged good (the paper's
  best setting: it needs no gold answer and keeps wrong-answer trajectories whose
  steps are all sound);
- ``outcome``: keep a trajectory only if its final answer is judged correct;
- ``process+outcome``: both.

A trajectory whose deciding judgements include an unparseable one is dropped and
counted in ``unparseable``: a verdict nobody could read is not evidence of quality.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from swirl_agents.judges.trajectories import JudgedTrajectory

FilterMode = Literal["none", "process", "outcome", "process+outcome"]
FILTER_MODES: tuple[str, ...] = ("none", "process", "outcome", "process+outcome")


@dataclass
class FilterResult:
    """The kept trajectories and how much of the data they are.

    Attributes:
        mode: The filter applied.
        kept: The trajectories that passed, in input order.
        trajectories_total: Trajectories in the input.
        steps_total: Steps (sub-trajectories) in the input.
        unparseable: Trajectories dropped because a deciding judgement was unparseable.
    """

    mode: str
    kept: list[JudgedTrajectory] = field(default_factory=list)
    trajectories_total: int = 0
    steps_total: int = 0
    unparseable: int = 0

    @property
    def trajectories_kept(self) -> int:
        """Trajectories that passed."""
        return len(self.kept)

    @property
    def steps_kept(self) -> int:
        """Steps (sub-trajectories) of the trajectories that passed."""
        return sum(len(item.trajectory.steps) for item in self.kept)

    def summary(self) -> str:
        """One line: ``filter process: kept 12/20 trajectories, 31/55 steps (2 unparseable)``."""
        return (
            f"filter {self.mode}: kept {self.trajectories_kept}/{self.trajectories_total} "
            f"trajectories, {self.steps_kept}/{self.steps_total} steps "
            f"({self.unparseable} dropped for unparseable judgements)"
        )


def filter_trajectories(
    judged: Sequence[JudgedTrajectory], mode: FilterMode = "none"
) -> FilterResult:
    """Keep the trajectories that pass ``mode`` (see the module docstring).

    Raises:
        ValueError: Unknown mode, or a trajectory lacks the judgements the mode needs.
    """
    if mode not in FILTER_MODES:
        raise ValueError(f"filter mode must be one of {FILTER_MODES}, got {mode!r}")
    result = FilterResult(mode)
    for item in judged:
        result.trajectories_total += 1
        result.steps_total += len(item.trajectory.steps)
        verdicts = _deciding_verdicts(item, mode)
        if any(verdict is None for verdict in verdicts):
            result.unparseable += 1
        elif all(verdicts):
            result.kept.append(item)
    return result


def _deciding_verdicts(item: JudgedTrajectory, mode: str) -> list[bool | None]:
    verdicts: list[bool | None] = []
    key = item.trajectory.key
    if "process" in mode:
        if item.process is None:
            raise ValueError(f"episode {key} has no process judgements; run a process judge first")
        verdicts += [judgement.good for judgement in item.process]
    if "outcome" in mode:
        if item.outcome is None:
            raise ValueError(f"episode {key} has no outcome judgement; run an outcome judge first")
        verdicts.append(item.outcome.good)
    return verdicts

"""Filtering: keep the judged trajectories that pass a SWiRL filter."""

from __future__ import annotations

import os
from typing import Any

from swirl_agents.stages.errors import StageError


def filter_file(source: str | os.PathLike, out: str | os.PathLike, mode: str) -> dict[str, Any]:
    """Keep the trajectories of the judged file ``source`` that pass ``mode``; write ``out``.

    ``out`` is written whole and renamed into place: it is complete or absent.

    Args:
        source: Judged trajectories (``swirl judge``'s output).
        out: The kept trajectories.
        mode: ``none``, ``process``, ``outcome`` or ``process+outcome``.

    Raises:
        StageError: An unknown mode, or a trajectory without the judgements the mode needs.
    """
    from swirl_agents.filters import filter_trajectories
    from swirl_agents.judges import JudgedTrajectory
    from swirl_agents.store import load_trajectories, write_trajectories

    judged = []
    for trajectory in load_trajectories(source):
        try:
            judged.append(JudgedTrajectory.from_trajectory(trajectory))
        except ValueError as error:
            raise StageError(f"{source}: {error}") from None
    try:
        result = filter_trajectories(judged, mode)  # type: ignore[arg-type]
    except ValueError as error:
        raise StageError(str(error)) from None
    write_trajectories(out, [item.to_trajectory() for item in result.kept])
    return {
        "trajectories": result.trajectories_total,
        "kept": result.trajectories_kept,
        "steps_kept": result.steps_kept,
        "summary": result.summary(),
    }

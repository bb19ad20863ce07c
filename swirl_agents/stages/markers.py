"""Completion markers: a rerun skips a finished stage and resumes a half-done one.

Every stage run through ``run_stage`` writes into its own folder and ends by writing
``done.json`` there (atomically: a temporary file renamed into place) with its
one-line summary. A half-done stage resumes through its own mechanism: rollouts
append to a ``TrajectoryStore`` that skips stored episodes, judging appends judged
trajectories the same way, training resumes from its last checkpoint. So a killed
run, rerun, ends with the files of an uninterrupted one.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

DONE = "done.json"


def stage_summary(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The summary a finished stage recorded, or None when it has not finished."""
    marker = Path(folder) / DONE
    if not marker.is_file():
        return None
    try:
        return json.loads(marker.read_text(encoding="utf-8"))
    except ValueError as error:
        raise ValueError(
            f"{marker}: corrupt stage marker ({error}); delete it to redo the stage"
        ) from None


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write JSON atomically: readers see the old file or the whole new one, never a torn one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(temporary, path)
    return path


def run_stage(
    folder: str | os.PathLike, name: str, work: Callable[[], dict[str, Any]], *, log=print
) -> dict[str, Any]:
    """Run ``work`` unless the stage in ``folder`` already finished; record and print its summary.

    Args:
        folder: The stage's output folder (created).
        name: Label for the printed line.
        work: Does the stage (resuming whatever it finds) and returns a JSON-ready summary.
        log: Where the one-line summaries go.
    """
    folder = Path(folder)
    done = stage_summary(folder)
    if done is not None:
        log(f"[{name}] already done: {done.get('summary', '')}")
        return done
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    summary = dict(work())
    summary["seconds"] = round(time.perf_counter() - started, 1)
    write_json(folder / DONE, summary)
    log(f"[{name}] {summary.get('summary', '')} ({summary['seconds']} s)")
    return summary

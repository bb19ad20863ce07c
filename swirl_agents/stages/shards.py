"""Sharded stages: one run split over N machines (or N processes), then merged.

A run's episodes, the ``(task_id, sample)`` pairs of ``generate`` or the trajectories
of ``judge``, are split into N shards by a stable hash of the pair: shard ``I`` of ``N``
holds the pairs whose hash is ``I`` modulo ``N``. Indices are 0-based, like Slurm's
``SLURM_ARRAY_TASK_ID`` and Kubernetes' ``JOB_COMPLETION_INDEX``, so ``--shard
$SLURM_ARRAY_TASK_ID/8`` works as it is. Membership depends on the pair only, not on
the order of the tasks, the machine or the Python process, so every shard knows its
own pairs without talking to the others, and the N shards are disjoint and together
are the whole run.

Each sharded output ``OUT`` gets a record ``OUT.shard.json`` (written before the first
episode) with the shard, the run it belongs to, and the count and digest of the keys it
must hold when done. ``merge_shards`` checks these records against the files and joins
them, refusing a missing, incomplete, overlapping or inconsistent set.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from swirl_agents.stages.errors import StageError

Key = tuple[str, int]


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (0-based) of ``count``.

    Raises:
        StageError: ``count`` below 1 or ``index`` outside ``0..count-1``.
    """

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1:
            raise StageError(f"shard {self}: the shard count must be at least 1")
        if not 0 <= self.index < self.count:
            raise StageError(
                f"shard {self}: the index is 0-based, from 0 to {self.count - 1} "
                f"(Slurm: --array=0-{self.count - 1})"
            )

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"I/N"`` (``"3/8"``) as a ``Shard``.

        Raises:
            StageError: Not two integers around a slash, or out of range.
        """
        index, slash, count = text.strip().partition("/")
        try:
            numbers = (int(index), int(count)) if slash else None
        except ValueError:
            numbers = None
        if numbers is None:
            raise StageError(
                f"--shard {text!r}: expected I/N, the 0-based shard index and the shard "
                "count, e.g. 0/8 or $SLURM_ARRAY_TASK_ID/8"
            )
        return cls(*numbers)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def __contains__(self, key: object) -> bool:
        task_id, sample = key  # type: ignore[misc]
        return shard_index(task_id, sample, self.count) == self.index


def shard_index(task_id: str, sample: int, count: int) -> int:
    """The shard of ``count`` that holds episode ``(task_id, sample)``.

    A stable hash (BLAKE2b, not Python's per-process ``hash``), so every machine agrees.
    """
    digest = hashlib.blake2b(f"{task_id}\x00{sample}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % count


def keys_digest(keys: Iterable[Key]) -> str:
    """A digest of a set of episode keys that does not depend on their order."""
    hasher = hashlib.sha256()
    for task_id, sample in sorted(keys):
        hasher.update(f"{task_id}\x00{sample}\n".encode())
    return hasher.hexdigest()


def record_path(out: str | os.PathLike) -> Path:
    """Where the shard record of output ``out`` lives: ``OUT.shard.json``."""
    return Path(f"{os.fspath(out)}.shard.json")


def shard_record(stage: str, shard: Shard, keys: Sequence[Key], run: dict[str, Any]) -> dict:
    """The record a sharded output carries; ``keys`` are every episode of the whole run.

    ``run`` describes the whole run (settings, policy, ...): shards of one run have equal
    ``run``s. The whole run's key count and digest are added to it, so shards of runs over
    other tasks differ too.
    """
    mine = [key for key in keys if key in shard]
    return {
        "stage": stage,
        "shard": {"index": shard.index, "count": shard.count},
        "episodes": len(mine),
        "keys_sha256": keys_digest(mine),
        "run": {
            **json.loads(json.dumps(run)),
            "episodes": len(keys),
            "keys_sha256": keys_digest(keys),
        },
    }


def claim_output(out: str | os.PathLike, record: dict | None, stored: int) -> None:
    """Check that ``out`` may take this (sharded or not) run, then write its shard record.

    Called with the output's store open, before any work: a rerun of the same shard
    resumes; anything else would mix two runs in one file. An empty output takes any run
    (a stale record of it is replaced, or removed for an unsharded run).

    Args:
        out: The stage's output file.
        record: This run's ``shard_record``, or None for an unsharded run.
        stored: Episodes already in ``out``.

    Raises:
        StageError: ``out`` holds episodes of another shard or run, or of an unsharded run
            resumed as a shard (or the other way round).
    """
    from swirl_agents.stages.markers import write_json

    path = record_path(out)
    existing = _read_record(path) if stored and path.exists() else None
    if stored and existing is None and record is not None:
        raise StageError(
            f"{out} holds {stored} episodes of an unsharded run; write shard "
            f"{_shard_name(record)} to another file"
        )
    if existing is not None and record is None:
        raise StageError(
            f"{out} is the output of shard {_shard_name(existing)} ({path}); pass --shard "
            f"{_shard_name(existing)} to resume it, or write to another file"
        )
    if existing is not None and existing != record:
        raise StageError(
            f"{out} is the output of shard {_shard_name(existing)} of another run (differs "
            f"in {_differences(existing, record)}); rerun with the same arguments to resume, "
            "or write to another file"
        )
    if record is not None:
        write_json(path, record)
    else:
        path.unlink(missing_ok=True)


def merge_shards(paths: Sequence[str | os.PathLike], out: str | os.PathLike) -> dict[str, Any]:
    """Join every shard's output of one sharded run into ``out``, sorted by ``(task_id, sample)``.

    Refuses, before writing anything, a set of files that is not exactly one whole run:
    a shard missing, a shard file without all of its episodes (killed mid-run), two
    files for one shard or an episode in the wrong shard (overlapping), or shards of
    different runs (another shard count, stage, policy, settings or task set). ``out``
    is written whole and renamed into place: complete or absent.

    Returns:
        A JSON-ready summary: ``shards``, ``trajectories`` and a one-line ``summary``.

    Raises:
        StageError: The one line names the file and what is wrong with it.
    """
    from swirl_agents.store import load_trajectories, write_trajectories

    if not paths:
        raise StageError("give the shard files to merge")
    if any(Path(path).resolve() == Path(out).resolve() for path in paths):
        raise StageError(f"{out} is one of the shard files; merge into another file")
    records = [(os.fspath(path), _load_record(path)) for path in paths]
    first, reference = records[0]
    owners: dict[int, str] = {}
    for path, record in records:
        _check_same_run(path, record, first, reference)
        index = record["shard"]["index"]
        if index in owners:
            raise StageError(
                f"{path} and {owners[index]} are both shard {_shard_name(record)} (overlapping)"
            )
        owners[index] = path
    count = reference["shard"]["count"]
    missing = [str(index) for index in range(count) if index not in owners]
    if missing:
        raise StageError(
            f"shard{'s' if len(missing) > 1 else ''} {', '.join(missing)} of {count} "
            f"missing: {len(records)} shard files given"
        )
    merged = []
    for path, record in records:
        try:
            trajectories = list(load_trajectories(path))
        except ValueError as error:
            raise StageError(str(error)) from None
        _check_shard_file(path, record, [t.key for t in trajectories])
        merged.extend(trajectories)
    merged.sort(key=lambda trajectory: trajectory.key)
    write_trajectories(out, merged)
    return {
        "shards": count,
        "trajectories": len(merged),
        "summary": f"merged {count} {reference['stage']} shards: {len(merged)} trajectories",
    }


def _check_same_run(path: str, record: dict, first: str, reference: dict) -> None:
    if record["shard"]["count"] != reference["shard"]["count"]:
        raise StageError(
            f"{path} is shard {_shard_name(record)} but {first} is shard "
            f"{_shard_name(reference)}: different shard counts (inconsistent)"
        )
    if record["stage"] != reference["stage"] or record["run"] != reference["run"]:
        raise StageError(
            f"{path} is a shard of another run than {first} (differs in "
            f"{_differences(record, reference)}; inconsistent)"
        )


def _check_shard_file(path: str, record: dict, keys: list[Key]) -> None:
    """Refuse a file with episodes of other shards, repeats, or not all of its own."""
    shard = Shard(**record["shard"])
    for key in keys:
        if key not in shard:
            other = shard_index(*key, shard.count)
            raise StageError(
                f"{path} holds episode {key}, which belongs to shard {other}/{shard.count}, "
                f"not {shard} (overlapping)"
            )
    expected = record["episodes"]
    if len(set(keys)) != len(keys):
        raise StageError(f"{path} holds an episode twice (overlapping)")
    if len(keys) < expected:
        raise StageError(
            f"{path} is incomplete: {len(keys)} of shard {shard}'s {expected} episodes "
            "(killed mid-run? rerun its command to finish it)"
        )
    if len(keys) != expected or keys_digest(keys) != record["keys_sha256"]:
        raise StageError(
            f"{path} does not hold shard {shard}'s episodes as its record "
            f"{record_path(path)} lists them ({len(keys)} held, {expected} expected)"
        )


def _load_record(path: str | os.PathLike) -> dict:
    if not Path(path).is_file():
        raise StageError(f"{path}: no such shard file")
    record_file = record_path(path)
    if not record_file.is_file():
        raise StageError(f"{path} has no shard record {record_file}: not a --shard run's output")
    return _read_record(record_file)


def _read_record(path: Path) -> dict:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        Shard(**record["shard"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise StageError(f"{path}: not a valid shard record ({error!r})") from None
    missing = {"stage", "episodes", "keys_sha256", "run"} - record.keys()
    if missing:
        raise StageError(f"{path}: not a valid shard record (no {', '.join(sorted(missing))})")
    return record


def _shard_name(record: dict) -> str:
    return f"{record['shard']['index']}/{record['shard']['count']}"


def _differences(a: dict, b: dict) -> str:
    """The fields in which two shard records differ, for an error message (``run.policy``)."""
    fields = [f for f in sorted({*a, *b} - {"run"}) if a.get(f) != b.get(f)]
    runs = a["run"], b["run"]
    fields += [f"run.{f}" for f in sorted({*runs[0], *runs[1]}) if runs[0].get(f) != runs[1].get(f)]
    return ", ".join(fields)

"""Export and import: trajectory files as Hugging Face ``datasets`` in TRL's conversational format.

A trajectory file (generated, judged or filtered) becomes a ``datasets.Dataset`` that
TRL's trainers read as it is, and that any ``datasets`` user can filter, share or push
to a hub; ``import_dataset`` turns it back into the exact trajectory records, so a
dataset that went through the hub still trains with ``swirl train``.

Two row kinds:

- ``trajectory``: one row per episode; ``messages`` is the whole transcript as chat
  messages (TRL's conversational language-modeling format).
- ``step``: one row per step (SWiRL's sub-trajectory (s_k, a_k)); ``prompt`` is the state
  s_k as messages and ``completion`` the action a_k as one assistant message (TRL's
  conversational prompt-completion format, trained on the completion only).

Both layouts are ``swirl_envs.transcript.transcript_messages``, the one the env's
``info["messages"]`` and the chat encoding use. Beside them: judgement columns (views of
``meta["judgements"]`` and the trainer's step weights) and the record columns that
rebuild each ``Trajectory`` exactly (free-form dicts as JSON text in ``*_json`` columns).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from swirl_agents.stages.errors import StageError
from swirl_agents.trajectory import Step, Trajectory
from swirl_envs.transcript import transcript_messages

ROW_KINDS: tuple[str, ...] = ("trajectory", "step")
JSON_FIELDS: tuple[str, ...] = ("env_kwargs", "metrics", "policy", "timing", "meta")
"""Free-form dicts, stored as JSON text (``<field>_json``): their keys differ between rows."""
RECORD_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Trajectory) if f.name != "steps")
"""The trajectory's fields besides its steps: one column each (``_column`` names it)."""
STEP_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Step))


def to_dataset(trajectories: Iterable[Trajectory], *, rows: str = "trajectory") -> Any:
    """The trajectories as a ``datasets.Dataset`` with one row per trajectory or per step.

    A trajectory without steps has no step row, so it is left out of a ``step`` dataset.

    Raises:
        StageError: An unknown row kind, malformed judgements, a value the columns cannot
            hold, or (``step`` rows) two trajectories with the same ``(task_id, sample)``,
            which import could not tell apart.
    """
    from datasets import Dataset

    if rows not in ROW_KINDS:
        raise StageError(f"rows must be one of {ROW_KINDS}, got {rows!r}")
    records: list[dict[str, Any]] = []
    seen: set[tuple[str, int]] = set()
    for trajectory in trajectories:
        if rows == "trajectory":
            records.append(_trajectory_row(trajectory))
            continue
        if trajectory.key in seen:
            raise StageError(
                f"episode {trajectory.key} appears twice; step rows need one trajectory per "
                "(task_id, sample) to be regrouped on import"
            )
        seen.add(trajectory.key)
        records.extend(_step_rows(trajectory))
    features = _features(rows)
    columns = {name: [record[name] for record in records] for name in features}
    try:  # by columns, not Dataset.from_list, which cannot build an empty dataset
        return Dataset.from_dict(columns, features=features)
    except (ValueError, TypeError, OverflowError) as error:
        raise StageError(f"the trajectories do not fit the dataset's columns: {error}") from None


def export_dataset(
    source: str | os.PathLike | Iterable[Trajectory],
    out: str | os.PathLike | None,
    *,
    rows: str = "trajectory",
    push_to_hub: str | None = None,
) -> dict[str, Any]:
    """Export trajectories to a dataset folder (``save_to_disk``) and/or a hub repository.

    The folder is written beside ``out`` and renamed into place: it is complete or absent.
    An existing ``out`` is replaced only when it is a saved dataset.

    Args:
        source: A trajectory file (generated, judged or filtered) or the trajectories.
        out: The dataset folder (``datasets.load_from_disk`` reads it), or None.
        rows: ``trajectory`` (one row each, ``messages``) or ``step`` (one row per step,
            ``prompt`` and ``completion``).
        push_to_hub: A hub repository id (``user/name``): the dataset is also pushed
            there with ``Dataset.push_to_hub`` (needs a network and a hub token:
            ``HF_TOKEN`` or a saved login).

    Returns:
        ``trajectories``, ``rows`` (rows written), ``skipped`` (trajectories without steps,
        which have no step row), ``columns``, ``out``, ``pushed_to`` and a one-line
        ``summary``.

    Raises:
        StageError: No destination, a missing or corrupt source, an ``out`` that is not a
            dataset folder, a failed push, or what ``to_dataset`` refuses.
    """
    if out is None and not push_to_hub:
        raise StageError("give an output folder, a hub repository id, or both")
    trajectories = _load(source)
    dataset = to_dataset(trajectories, rows=rows)
    if out is not None:
        _save(dataset, Path(out))
    if push_to_hub:
        try:
            dataset.push_to_hub(push_to_hub)
        except OSError as error:  # offline, refused, or an HTTP error of the hub
            raise StageError(f"push to {push_to_hub} failed: {error}") from None
    skipped = sum(not t.steps for t in trajectories) if rows == "step" else 0
    places = ([] if out is None else [str(out)]) + ([f"hub:{push_to_hub}"] if push_to_hub else [])
    return {
        "trajectories": len(trajectories),
        "rows": len(dataset),
        "skipped": skipped,
        "columns": list(dataset.column_names),
        "out": None if out is None else str(out),
        "pushed_to": push_to_hub,
        "summary": f"exported {len(trajectories)} trajectories as {len(dataset)} {rows} rows "
        f"to {' and '.join(places)}" + (f" ({skipped} without steps left out)" if skipped else ""),
    }


def import_dataset(source: str | os.PathLike | Any) -> list[Trajectory]:
    """The trajectories of an exported dataset, equal to the exported records (``to_dict``).

    Step rows are regrouped by ``(task_id, sample)``, in the order each trajectory first
    appears; every step 0..K-1 of a trajectory must be there once.

    Args:
        source: A folder written by ``export_dataset`` (or ``save_to_disk``), or a
            ``Dataset`` (e.g. ``load_dataset(repo, split="train")`` from a hub), or a
            ``DatasetDict`` with one split.

    Raises:
        StageError: A missing or unreadable folder, missing columns, or rows that do not
            rebuild a trajectory (the message names the source and the row or episode).
    """
    dataset, name = _open(source)
    columns = set(dataset.column_names)
    if "steps" in columns:
        rows = "trajectory"
    elif "step" in columns:
        rows = "step"
    else:
        raise StageError(f"{name}: not an exported trajectory dataset (no steps or step column)")
    missing = sorted(set(_record_columns(rows)) - columns)
    if missing:
        raise StageError(f"{name}: lacks the columns {missing} of exported {rows} rows")
    records = dataset.select_columns(list(_record_columns(rows))).to_list()
    if rows == "trajectory":
        return [
            _rebuild(record, record["steps"], name, f"row {i}") for i, record in enumerate(records)
        ]
    return _regroup(records, name)


def import_file(source: str | os.PathLike | Any, out: str | os.PathLike) -> dict[str, Any]:
    """Import a dataset and write its trajectories as a JSONL file (complete or absent).

    Returns:
        ``trajectories``, ``steps``, ``out`` and a one-line ``summary``.

    Raises:
        StageError: What ``import_dataset`` raises.
    """
    from swirl_agents.store import write_trajectories

    trajectories = import_dataset(source)
    write_trajectories(out, trajectories)
    steps = sum(len(t.steps) for t in trajectories)
    return {
        "trajectories": len(trajectories),
        "steps": steps,
        "out": str(out),
        "summary": f"imported {len(trajectories)} trajectories ({steps} steps) to {out}",
    }


# ---- rows ---------------------------------------------------------------------------


def _features(rows: str) -> Any:
    """The columns of each row kind, with explicit types so every export has one schema."""
    from datasets import Features, Value

    text, number, flag, integer = Value("string"), Value("float64"), Value("bool"), Value("int64")
    messages = [{"role": text, "content": text}]
    step = {name: number if name == "reward" else text for name in STEP_FIELDS}
    outcome = {"outcome_verdict": flag, "outcome_score": number}
    types = {
        "task_id": text, "sample": integer, "env_id": text, "question": text,
        "answers": [text], "prompt": text, "score": number, "terminated": flag,
        "truncated": flag, "seed": integer, "schema_version": integer,
        **{name: text for name in JSON_FIELDS},
    }  # fmt: skip
    unknown = sorted(set(RECORD_FIELDS) - set(types))
    if unknown:  # a new Trajectory field must get a column, or the round trip would lose it
        raise RuntimeError(f"no column type for the Trajectory fields {unknown}")
    record = {_column(name): types[name] for name in RECORD_FIELDS}
    if rows == "trajectory":
        judgements = {"process_scores": [number], "process_verdicts": [flag],
                      "step_weights": [number], **outcome}  # fmt: skip
        return Features({"messages": messages, **judgements, **record, "steps": [step]})
    judgements = {"process_score": number, "process_verdict": flag, "step_weight": number,
                  **outcome}  # fmt: skip
    position = {"step": integer, "num_steps": integer}
    return Features(
        {"prompt": messages, "completion": messages, **position, **judgements, **record, **step}
    )


def _record_columns(rows: str) -> tuple[str, ...]:
    """The columns that rebuild a trajectory: everything but the chat views and judgement views."""
    views = {"messages", "prompt", "completion", "process_scores", "process_verdicts",
             "step_weights", "process_score", "process_verdict", "step_weight",
             "outcome_verdict", "outcome_score"}  # fmt: skip
    return tuple(name for name in _features(rows) if name not in views)


def _column(field: str) -> str:
    """A record field's column: ``prompt`` is ``prompt_text`` (TRL reads ``prompt`` as its
    prompt-completion format), a free-form dict is ``<field>_json``."""
    if field == "prompt":
        return "prompt_text"
    return f"{field}_json" if field in JSON_FIELDS else field


def _common(record: dict[str, Any], key: tuple[str, int]) -> dict[str, Any]:
    """The record columns of ``Trajectory.to_dict()`` output (the steps aside)."""
    row = {}
    for name in RECORD_FIELDS:
        value = record[name]
        if name in JSON_FIELDS:
            try:
                value = json.dumps(value, ensure_ascii=False, allow_nan=False)
            except (TypeError, ValueError) as error:
                raise StageError(f"episode {key}: {name} is not JSON: {error}") from None
        row[_column(name)] = value
    return row


def _judgements(trajectory: Trajectory) -> tuple[list[Any] | None, dict[str, Any]]:
    """Per-step ``(score, verdict)`` pairs (None if not process-judged) and the outcome columns."""
    from swirl_agents.judges.trajectories import JudgedTrajectory

    try:
        judged = JudgedTrajectory.from_trajectory(trajectory, required=False)
    except ValueError as error:
        raise StageError(str(error)) from None
    process = None if judged.process is None else [(j.score, j.good) for j in judged.process]
    outcome = judged.outcome
    return process, {
        "outcome_verdict": None if outcome is None else outcome.good,
        "outcome_score": None if outcome is None else outcome.score,
    }


def _weight(score: float | None) -> float:
    """The trainer's step weight (``train.data.step_rewards``): the score, 0 when unreadable."""
    return 0.0 if score is None else float(score)


def _trajectory_row(trajectory: Trajectory) -> dict[str, Any]:
    process, outcome = _judgements(trajectory)
    record = trajectory.to_dict()
    return {
        "messages": _messages(trajectory, len(trajectory.steps)),
        "process_scores": None if process is None else [score for score, _ in process],
        "process_verdicts": None if process is None else [good for _, good in process],
        "step_weights": None if process is None else [_weight(score) for score, _ in process],
        **outcome,
        **_common(record, trajectory.key),
        "steps": record["steps"],
    }


def _step_rows(trajectory: Trajectory) -> list[dict[str, Any]]:
    process, outcome = _judgements(trajectory)
    record = trajectory.to_dict()
    common = _common(record, trajectory.key)
    rows = []
    for k, step in enumerate(record["steps"]):
        score, good = (None, None) if process is None else process[k]
        rows.append({
            "prompt": _messages(trajectory, k),
            "completion": [{"role": "assistant", "content": step["action"]}],
            "step": k,
            "num_steps": len(record["steps"]),
            "process_score": score,
            "process_verdict": good,
            "step_weight": None if process is None else _weight(score),
            **outcome,
            **common,
            **step,
        })  # fmt: skip
    return rows


def _messages(trajectory: Trajectory, k: int) -> list[dict[str, str]]:
    """The state s_k as chat messages (``k = K``: the whole transcript)."""
    pairs = [(step.action, step.feedback) for step in trajectory.steps[:k]]
    try:
        return transcript_messages(trajectory.prompt, trajectory.question, pairs)
    except ValueError as error:
        raise StageError(f"episode {trajectory.key}: {error}") from None


# ---- import -------------------------------------------------------------------------


def _rebuild(common: dict[str, Any], steps: Sequence[dict], name: str, where: str) -> Trajectory:
    """A trajectory from its record columns and its steps' records."""
    try:
        record = {
            field: json.loads(common[_column(field)])
            if field in JSON_FIELDS
            else common[_column(field)]
            for field in RECORD_FIELDS
        }
        return Trajectory.from_dict({**record, "steps": [dict(step) for step in steps]})
    except (ValueError, TypeError) as error:
        raise StageError(f"{name}: {where}: not a trajectory: {error}") from None


def _regroup(records: list[dict[str, Any]], name: str) -> list[Trajectory]:
    """Step rows back into trajectories, by ``(task_id, sample)`` in first-appearance order."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for record in records:
        groups.setdefault((record["task_id"], record["sample"]), []).append(record)
    shared = [column for column in _record_columns("trajectory") if column != "steps"]
    trajectories = []
    for key, group in groups.items():
        group.sort(key=lambda record: record["step"])
        expected = group[0]["num_steps"]
        if [record["step"] for record in group] != list(range(expected)) or any(
            record["num_steps"] != expected for record in group
        ):
            raise StageError(
                f"{name}: episode {key}: needs each of its {expected} steps once, found steps "
                f"{[record['step'] for record in group]}"
            )
        if any(record[c] != group[0][c] for record in group[1:] for c in shared):
            raise StageError(f"{name}: episode {key}: its step rows disagree on the trajectory")
        steps = [{field: record[field] for field in STEP_FIELDS} for record in group]
        trajectories.append(_rebuild(group[0], steps, name, f"episode {key}"))
    return trajectories


def _load(source: str | os.PathLike | Iterable[Trajectory]) -> list[Trajectory]:
    """The trajectories of a file (a missing or corrupt one is a ``StageError``) or an iterable."""
    from swirl_agents.store import load_trajectories

    if not isinstance(source, str | os.PathLike):
        return list(source)
    if not Path(source).is_file():
        raise StageError(f"{os.fspath(source)}: no such trajectory file")
    try:
        return list(load_trajectories(source))
    except (OSError, ValueError) as error:
        raise StageError(str(error)) from None


def _open(source: str | os.PathLike | Any) -> tuple[Any, str]:
    """The one ``Dataset`` of a folder, ``Dataset`` or one-split ``DatasetDict``, and its name."""
    import datasets

    name = "the dataset"
    if isinstance(source, str | os.PathLike):
        name = os.fspath(source)
        if not Path(source).is_dir():
            raise StageError(f"{name}: no such dataset folder")
        try:
            source = datasets.load_from_disk(name)
        except (OSError, ValueError) as error:
            raise StageError(f"{name}: not a saved dataset: {error}") from None
    if isinstance(source, datasets.DatasetDict):
        if len(source) != 1:
            raise StageError(f"{name}: holds the splits {sorted(source)}; pass one of them")
        (source,) = source.values()
    if not isinstance(source, datasets.Dataset):
        raise StageError(f"{name}: expected a datasets.Dataset, got {type(source).__name__}")
    return source, name


def _save(dataset: Any, out: Path) -> None:
    """``save_to_disk`` beside ``out``, then rename into place (replacing only a saved dataset)."""
    if out.exists() and not (out / "state.json").is_file():
        raise StageError(f"{out}: exists and is not a saved dataset; not replacing it")
    temporary = out.with_name(out.name + ".tmp")
    shutil.rmtree(temporary, ignore_errors=True)
    dataset.save_to_disk(os.fspath(temporary))
    if out.exists():
        shutil.rmtree(out)
    os.replace(temporary, out)

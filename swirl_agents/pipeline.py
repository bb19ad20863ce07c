"""Stage orchestration: generate -> judge -> filter -> train -> eval, each resumable after a kill.

Every stage writes into its own folder and ends by writing ``done.json`` there
(atomically: a temporary file renamed into place) with its one-line summary. A
rerun skips a stage whose marker exists, and a half-done stage resumes through
its own mechanism: rollouts append to a ``TrajectoryStore`` that skips stored
episodes, training resumes from its last checkpoint, and judging rewrites its
(cheap, deterministic) output whole. So a killed run, rerun, ends with the files
of an uninterrupted one.

File schemas between stages: trajectories JSONL (``Trajectory.to_dict`` per line)
-> judged JSONL (the same, with ``meta["judgements"]``) -> filtered JSONL (a subset)
-> checkpoint folder (``final/``, a ``from_pretrained`` path) -> eval JSON.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from swirl_agents.config import FamilyConfig

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


def make_env(family: FamilyConfig, split: str, num_tasks: int, seed: int):
    """The family's env for one split.

    A generated env (one that takes ``num_tasks``) makes ``num_tasks`` questions from
    ``seed``; a data env loads its split, and the stages use its first ``num_tasks``.
    """
    import inspect

    import gymnasium as gym

    import swirl_envs  # noqa: F401  (registers the env ids)

    entry = gym.spec(family.env_id).entry_point
    cls = gym.envs.registration.load_env_creator(entry) if isinstance(entry, str) else entry
    generated = "num_tasks" in inspect.signature(cls).parameters
    extra = {"num_tasks": num_tasks, "seed": seed} if generated else {}
    return gym.make(family.env_id, split=split, **extra, **family.env_kwargs)


def generate(
    env,
    policy,
    path: str | os.PathLike,
    *,
    samples: int,
    seed: int,
    batch_size: int,
    num_tasks: int | None = None,
) -> dict[str, Any]:
    """Roll out ``samples`` episodes per task (the first ``num_tasks``) into the store ``path``.

    Episodes already in the store are skipped, so a killed generation resumes.
    """
    from swirl_agents.rollout import rollout
    from swirl_agents.store import TrajectoryStore

    with TrajectoryStore(path) as store:
        result = rollout(
            env,
            policy,
            samples=samples,
            batch_size=batch_size,
            seed=seed,
            num_tasks=num_tasks,
            store=store,
            keep=False,
        )
        total = len(store)
    return {"episodes": total, "summary": f"{total} trajectories; {result.summary.format()}"}


def judge_and_filter(
    source: str | os.PathLike,
    folder: str | os.PathLike,
    env,
    *,
    process: str,
    outcome: str,
    mode: str,
) -> dict[str, Any]:
    """Judge every step and answer of ``source``; write ``judged.jsonl`` and ``filtered.jsonl``.

    Both files are written whole and renamed into place, so a kill leaves either no
    file or a complete one.
    """
    from swirl_agents.filters import filter_trajectories
    from swirl_agents.judges import judge_trajectories, make_judge
    from swirl_agents.store import load_trajectories

    folder = Path(folder)
    trajectories = sorted(load_trajectories(source), key=lambda t: t.key)
    judged = judge_trajectories(
        trajectories,
        process_judge=make_judge(process, env),
        outcome_judge=make_judge(outcome, env),
    )
    result = filter_trajectories(judged, mode)  # type: ignore[arg-type]
    write_trajectories(folder / "judged.jsonl", [item.to_trajectory() for item in judged])
    write_trajectories(folder / "filtered.jsonl", [item.to_trajectory() for item in result.kept])
    return {
        "trajectories": result.trajectories_total,
        "kept": result.trajectories_kept,
        "steps_kept": result.steps_kept,
        "summary": result.summary(),
    }


def write_trajectories(path: str | os.PathLike, trajectories) -> Path:
    """Write a trajectory JSONL file atomically (the store's line format)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "w", encoding="utf-8") as handle:
        for trajectory in trajectories:
            handle.write(json.dumps(trajectory.to_dict(), ensure_ascii=False) + "\n")
    os.replace(temporary, path)
    return path


def train(
    model_path: str | os.PathLike,
    trajectories,
    out_dir: str | os.PathLike,
    settings: Mapping[str, Any],
    *,
    judge: Any = None,
) -> dict[str, Any]:
    """Train from ``model_path`` on ``trajectories``, resuming from a checkpoint in ``out_dir``.

    Args:
        model_path: Start model (``from_pretrained`` path).
        trajectories: Training trajectories.
        out_dir: Checkpoints, ``metrics.jsonl`` and ``final/``.
        settings: ``TrainConfig`` fields (objective, steps, lr, batch_size, ...).
        judge: Process judge, for the online objective.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from swirl_agents.train import TrainConfig, Trainer

    config = TrainConfig.from_dict(
        {"model": str(model_path), "out_dir": str(out_dir), "resume": True, **settings}
    )
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    trainer = Trainer(config, model, tokenizer, list(trajectories), judge=judge)
    metrics = trainer.train()
    return {
        "model": str(trainer.out_dir / "final"),
        "final_loss": metrics.get("loss"),
        "summary": f"{config.objective} {config.steps} steps on {len(trajectories)} trajectories, "
        f"last loss {metrics.get('loss', float('nan')):.4f}",
    }

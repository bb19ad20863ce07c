"""The whole SWiRL experiment for one config: base model, stage 1, judging, stage 2, controls, eval.

For every seed and family, under ``out_dir/seed-S/FAMILY/``:

1. ``warmup-data/``: imperfect expert trajectories with systematic misconceptions
   (``misconceptions``), two per training question: sample 0 warms the base model
   up, sample 1 is the "more warm-up data" of the compute-matched control;
2. ``init/`` and ``base/``: the tiny model and tokenizer, then SFT on the warm-up data
   (skipped when ``model.path`` names a model to start from);
3. ``samples/``: k trajectories per training question from the base model (stage 1);
4. ``judge/``: every step and answer judged, then filtered (``judged.jsonl``, ``filtered.jsonl``);
5. ``swirl/``, ``sft/``, ``compute-matched/``: stage 2 and the two controls, same steps;
6. ``eval/MODEL-tT/``: the test split under each decoding, accuracy overall and split
   by misconception problems.

Every step is a stage of ``swirl_agents.stages`` under a ``run_stage`` marker, so a
rerun skips finished work and resumes the rest. ``results.json`` and ``report.md``
(with plots) summarise all of it.
"""

from __future__ import annotations

import ctypes
import functools
import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from swirl_agents.config import FamilyConfig, RunConfig, save_config
from swirl_agents.demo.misconceptions import HopMisconceptionPolicy, MathMisconceptionPolicy
from swirl_agents.stages import generate, run_stage, train, write_json
from swirl_agents.stages.recipe import (
    build_tiny,
    evaluate_models,
    sample_and_filter,
    train_config,
    train_env,
    warmup_config,
)

MODELS = ("base", "swirl", "sft", "compute-matched")
"""Evaluated models, in table order."""

_PR_SET_PDEATHSIG = 1  # prctl option: signal this process when its parent dies


def run_demo(config: RunConfig, *, log=print) -> dict[str, Any]:
    """Run every seed and family of ``config``; returns the results (also in ``results.json``).

    Families of a seed run in ``config.workers`` processes at once: the tiny model
    uses one core best, and the families are independent.
    """
    out = Path(config.out_dir)
    save_config(config, out / "config.yaml")
    results: dict[str, Any] = {"seeds": {}}
    jobs = [(seed, family) for seed in config.seeds for family in config.families]
    workers = min(config.workers, len(jobs))
    if workers > 1:
        context = multiprocessing.get_context("spawn")  # torch and fork do not mix
        with ProcessPoolExecutor(
            workers, mp_context=context, initializer=_exit_with_parent, initargs=(os.getpid(),)
        ) as pool:
            futures = [pool.submit(_run_job, config, seed, family, out) for seed, family in jobs]
            outcomes = [future.result() for future in futures]
    else:
        outcomes = [_run_job(config, seed, family, out, log=log) for seed, family in jobs]
    for (seed, family), outcome in zip(jobs, outcomes, strict=True):
        results["seeds"].setdefault(str(seed), {})[family.name] = outcome
    write_json(out / "results.json", results)
    from swirl_agents.report import write_report

    write_report(config, results, out, log=log)
    return results


def _exit_with_parent(parent: int) -> None:
    """Make a worker die with ``swirl demo``: a resumed run must not race a stray worker."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.2)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _run_job(
    config: RunConfig, seed: int, family: FamilyConfig, out: Path, *, log=print
) -> dict[str, Any]:
    import torch

    torch.set_num_threads(config.threads)
    log(f"== seed {seed}, {family.name} ({family.env_id}) ==")
    return run_family(config, family, seed, out / f"seed-{seed}" / family.name, log=log)


def run_family(
    config: RunConfig, family: FamilyConfig, seed: int, folder: Path, *, log=print
) -> dict[str, Any]:
    """All stages of one family and seed; returns ``{"eval": ..., "stages": ...}``."""
    from swirl_agents.store import load_in_task_order
    from swirl_agents.tiny import tiny_corpus

    env = train_env(family, seed)
    stage = functools.partial(_stage, folder, family.name, log)
    stages: dict[str, Any] = {}
    warm = folder / "warmup-data" / "trajectories.jsonl"
    if config.model.path:
        base_model = config.model.path
    else:
        expert = expert_policy(family, env, config)
        stages["warmup-data"] = stage(
            "warmup-data",
            lambda: generate(
                env, expert, warm, samples=2, seed=seed, batch_size=256,
                num_tasks=family.train_tasks,
            ),
        )  # fmt: skip
        stages["init"] = stage(
            "init", lambda: build_tiny(config, tiny_corpus([env]), folder / "init", seed)
        )
        warmup = warmup_config(
            config, seed, folder / "init", folder / "base", _warmup_steps(config)
        )
        stages["base"] = stage("base", lambda: train(warmup, load_in_task_order(warm, sample=0)))
        base_model = str(folder / "base" / "final")

    kept, sampled = sample_and_filter(config, family, env, base_model, seed, folder, log=log)
    stages.update(sampled)
    models = {"base": base_model}
    if kept:
        swirl = train_config(config, seed, base_model, folder / "swirl")
        judge = config.judge.process if config.train.objective == "swirl-online" else None
        stages["swirl"] = stage("swirl", lambda: train(swirl, kept, judge=judge))
        models["swirl"] = str(folder / "swirl" / "final")
    else:  # nothing to learn from: the SWiRL model is the base model, and the report says so
        log(f"[{family.name}/swirl] no trajectory passed the {config.judge.filter} filter")
        stages["swirl"] = {"summary": "no trajectory passed the filter: SWiRL = base model"}
        models["swirl"] = base_model
    if "sft" in config.train.controls:
        sft = train_config(config, seed, base_model, folder / "sft", objective="sft")
        judged = folder / "judge" / "judged.jsonl"
        stages["sft"] = stage("sft", lambda: train(sft, load_in_task_order(judged)))
        models["sft"] = str(folder / "sft" / "final")
    if "compute-matched" in config.train.controls and not config.model.path:
        matched = train_config(
            config, seed, base_model, folder / "compute-matched", objective="sft"
        )
        stages["compute-matched"] = stage(
            "compute-matched", lambda: train(matched, load_in_task_order(warm, sample=1))
        )
        models["compute-matched"] = str(folder / "compute-matched" / "final")
    evaluations = evaluate_models(config, family, seed, models, folder / "eval", log=log)
    return {"eval": evaluations, "stages": stages}


def _warmup_steps(config: RunConfig) -> int:
    return config.warmup.settings.get("steps", 0)


def _stage(folder: Path, family: str, log, name: str, work) -> dict[str, Any]:
    return run_stage(folder / name, f"{family}/{name}", work, log=log)


def expert_policy(family: FamilyConfig, env, config: RunConfig):
    """The imperfect expert that writes the family's warm-up data (SynthMath or SynthHop)."""
    rate = family.misconception_rate
    if rate is None:
        rate = config.warmup.misconception_rate
    noise = config.warmup.noise
    base = env.unwrapped
    if hasattr(base, "world"):
        return HopMisconceptionPolicy(base.world, family.confusions, rate, noise)
    if family.env_id.startswith("swirl/SynthMath"):
        return MathMisconceptionPolicy(family.confusions, rate, noise)
    raise ValueError(
        f"family {family.name!r}: the misconception warm-up exists for SynthMath and SynthHop; "
        f"set model.path to start {family.env_id} from a pretrained model"
    )

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

Every step is a ``pipeline.run_stage``, so a rerun skips finished work and resumes
the rest. ``results.json`` and ``report.md`` (with plots) summarise all of it.
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
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from swirl_agents.config import FamilyConfig, RunConfig, save_config
from swirl_agents.demo.misconceptions import (
    HopMisconceptionPolicy,
    MathMisconceptionPolicy,
    uses_confusion,
)
from swirl_agents.judges import make_judge
from swirl_agents.pipeline import (
    generate,
    judge_and_filter,
    make_env,
    run_stage,
    train,
    write_json,
)

MODELS = ("base", "swirl", "sft", "compute-matched")
"""Evaluated models, in table order."""

TEST_SEED_OFFSET = 1000
"""Test questions are generated from ``seed + offset``; the split keeps them disjoint anyway."""

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
    from swirl_agents.tiny import tiny_corpus

    train_env = make_env(family, family.train_split, family.train_tasks, seed)
    stage = functools.partial(_stage, folder, family.name, log)
    stages: dict[str, Any] = {}
    warm = folder / "warmup-data" / "trajectories.jsonl"
    if config.model.path:
        base_model = config.model.path
    else:
        expert = expert_policy(family, train_env, config)
        stages["warmup-data"] = stage(
            "warmup-data",
            lambda: generate(
                train_env, expert, warm,
                samples=2, seed=seed, batch_size=256, num_tasks=family.train_tasks,
            ),
        )  # fmt: skip
        stages["init"] = stage(
            "init",
            lambda: build_tiny(config, tiny_corpus([train_env]), folder / "init", seed),
        )
        stages["base"] = stage(
            "base",
            lambda: train(
                folder / "init", load_samples(warm, 0), folder / "base",
                warmup_settings(config, seed, config.warmup.steps),
            ),
        )  # fmt: skip
        base_model = str(folder / "base" / "final")

    kept, sampled = sample_and_filter(config, family, train_env, base_model, seed, folder, log=log)
    stages.update(sampled)
    models = {"base": base_model}
    online_judge = (
        make_judge(config.judge.process, train_env)
        if config.train.objective == "swirl-online"
        else None
    )
    if kept:
        stages["swirl"] = stage(
            "swirl",
            lambda: train(
                base_model, kept, folder / "swirl",
                {**train_settings(config, seed), "objective": config.train.objective},
                judge=online_judge,
            ),
        )  # fmt: skip
        models["swirl"] = str(folder / "swirl" / "final")
    else:  # nothing to learn from: the SWiRL model is the base model, and the report says so
        log(f"[{family.name}/swirl] no trajectory passed the {config.judge.filter} filter")
        stages["swirl"] = {"summary": "no trajectory passed the filter: SWiRL = base model"}
        models["swirl"] = base_model
    sft = {**train_settings(config, seed), "objective": "sft"}
    if "sft" in config.train.controls:
        stages["sft"] = stage(
            "sft",
            lambda: train(
                base_model,
                load_in_task_order(folder / "judge" / "judged.jsonl"),
                folder / "sft",
                sft,
            ),
        )
        models["sft"] = str(folder / "sft" / "final")
    if "compute-matched" in config.train.controls and not config.model.path:
        stages["compute-matched"] = stage(
            "compute-matched",
            lambda: train(base_model, load_samples(warm, 1), folder / "compute-matched", sft),
        )
        models["compute-matched"] = str(folder / "compute-matched" / "final")
    evaluations = evaluate_models(config, family, seed, models, folder / "eval", log=log)
    return {"eval": evaluations, "stages": stages}


def sample_and_filter(
    config: RunConfig, family: FamilyConfig, env, model: str, seed: int, folder: Path, *, log=print
) -> tuple[list, dict[str, Any]]:
    """Stage 1 and judging: ``folder/samples`` and ``folder/judge``; returns (kept, stages)."""
    stage = functools.partial(_stage, folder, family.name, log)
    samples = folder / "samples" / "trajectories.jsonl"
    stages = {
        "samples": stage(
            "samples",
            lambda: generate(
                env, model_policy(model, config.generate.temperature, config), samples,
                samples=family.samples or config.generate.samples, seed=seed,
                batch_size=config.generate.batch_size, num_tasks=family.train_tasks,
            ),
        ),
        "judge": stage(
            "judge",
            lambda: judge_and_filter(
                samples, folder / "judge", env, process=config.judge.process,
                outcome=config.judge.outcome, mode=config.judge.filter,
            ),
        ),
    }  # fmt: skip
    return load_in_task_order(folder / "judge" / "filtered.jsonl"), stages


def evaluate_models(
    config: RunConfig,
    family: FamilyConfig,
    seed: int,
    models: dict[str, str],
    folder: Path,
    *,
    log=print,
) -> dict[str, dict[str, Any]]:
    """Every model on the test split at every temperature: ``{model: {"0": report, ...}}``.

    Each evaluation is a stage ``folder/MODEL-tT`` (skipped when done).
    """
    env = held_out_env(family, seed)
    group = functools.partial(uses_confusion, confusions=family.confusions)
    evaluations: dict[str, dict[str, Any]] = {}
    for name, path in models.items():
        for temperature in config.eval.temperatures:
            label = f"{name}-t{temperature:g}"
            evaluations.setdefault(name, {})[f"{temperature:g}"] = run_stage(
                folder / label,
                f"{family.name}/eval/{label}",
                functools.partial(
                    _evaluate, path, env, temperature, folder / label, seed, config,
                    family.test_tasks, group,
                ),
                log=log,
            )  # fmt: skip
    return evaluations


def held_out_env(family: FamilyConfig, seed: int):
    """The held-out questions every model of ``seed`` is evaluated on."""
    return make_env(family, family.test_split, family.test_tasks, seed + TEST_SEED_OFFSET)


def train_settings(config: RunConfig, seed: int) -> dict[str, Any]:
    """Stage 2's ``TrainConfig`` settings, shared by SWiRL and both controls (same budget)."""
    return {
        "batch_size": config.train.batch_size,
        "micro_batch_size": config.train.micro_batch_size,
        "steps": config.train.steps,
        "lr": config.train.lr,
        "save_every": config.train.save_every,
        "seed": seed,
        "device": config.device or None,
        "max_new_tokens": config.generate.max_new_tokens,
        "prompt_format": config.model.prompt_format,
        "progress": True,
    }


def warmup_settings(config: RunConfig, seed: int, steps: int) -> dict[str, Any]:
    """The warm-up's SFT settings for ``steps`` steps (the base model's recipe)."""
    return {
        **train_settings(config, seed),
        "objective": "sft",
        "steps": steps,
        "lr": config.warmup.lr,
        "batch_size": config.warmup.batch_size,
        "micro_batch_size": config.warmup.micro_batch_size,
        "warmup_steps": max(1, steps // 20),
    }


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


def build_tiny(config: RunConfig, texts: Iterable[str], out: Path, seed: int) -> dict[str, Any]:
    """The config's tiny model, with a tokenizer trained on ``texts`` (``tiny.tiny_corpus``)."""
    from swirl_agents.tiny import build_tiny_model

    model = config.model
    build_tiny_model(
        out,
        texts,
        vocab_size=model.vocab_size,
        hidden_size=model.hidden_size,
        num_layers=model.num_layers,
        num_heads=model.num_heads,
        intermediate_size=model.intermediate_size,
        seed=seed,
    )
    return {"model": str(out), "summary": f"tiny model and tokenizer in {out}"}


def model_policy(path: str, temperature: float, config: RunConfig):
    """An ``HFPolicy`` sampling at ``temperature`` with the config's layout and device."""
    from swirl_agents.policies import SamplingSettings
    from swirl_agents.policies.hf import HFPolicy

    sampling = SamplingSettings(
        temperature=temperature, max_new_tokens=config.generate.max_new_tokens
    )
    return HFPolicy.from_pretrained(
        path,
        device=config.device or None,
        sampling=sampling,
        prompt_format=config.model.prompt_format,
    )


def _evaluate(
    path, env, temperature, folder: Path, seed, config: RunConfig, num_tasks, group
) -> dict:
    from swirl_agents.evaluate import evaluate_model

    report = evaluate_model(
        path, env, temperature=temperature, store_path=folder / "trajectories.jsonl", seed=seed,
        batch_size=config.eval.batch_size, max_new_tokens=config.eval.max_new_tokens,
        device=config.device or None, num_tasks=num_tasks, group=group,
        prompt_format=config.model.prompt_format,
    )  # fmt: skip
    report["summary"] = (
        f"accuracy {report['accuracy']:.3f} "
        f"(misconception {report.get('in_group', float('nan')):.3f}, "
        f"other {report.get('out_group', float('nan')):.3f})"
    )
    return report


def load_in_task_order(path: Path) -> list:
    """A trajectory file, whole, in task order."""
    from swirl_agents.store import load_trajectories

    return sorted(load_trajectories(path), key=lambda t: t.key)


def load_samples(path: Path, sample: int) -> list:
    """The trajectories of one sample index, in task order (a stable training set)."""
    return [t for t in load_in_task_order(path) if t.sample == sample]

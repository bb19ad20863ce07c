"""A run config's stages: what the demo, the ablations and a user's YAML config run per family.

These compose the stage functions for one ``FamilyConfig`` of a ``RunConfig`` and put
each under a ``run_stage`` marker: its envs (train split, and held-out questions made
from another seed), SWiRL's training settings (the config's ``train`` section, checked
by ``TrainConfig``), stage 1 with judging and filtering, and the evaluation of several
models under every decoding of ``eval.temperatures``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from swirl_agents.config import FamilyConfig, RunConfig
from swirl_agents.stages.envs import make_env
from swirl_agents.stages.evaluate import evaluate, model_policy
from swirl_agents.stages.filter import filter_file
from swirl_agents.stages.generate import generate
from swirl_agents.stages.judge import JudgeSettings, judge
from swirl_agents.stages.markers import run_stage

TEST_SEED_OFFSET = 1000
"""Held-out questions are generated from ``seed + offset``; the split keeps them disjoint anyway."""


def train_env(family: FamilyConfig, seed: int):
    """The family's training questions (generated envs make ``train_tasks`` from ``seed``)."""
    return make_env(
        family.env_id, family.env_kwargs, split=family.train_split,
        num_tasks=family.train_tasks, seed=seed,
    )  # fmt: skip


def held_out_env(family: FamilyConfig, seed: int):
    """The held-out questions every model of ``seed`` is evaluated on."""
    return make_env(
        family.env_id, family.env_kwargs, split=family.test_split,
        num_tasks=family.test_tasks, seed=seed + TEST_SEED_OFFSET,
    )  # fmt: skip


def uses_confusion(task_meta: Mapping[str, Any], confusions: Mapping[str, str]) -> bool:
    """Whether a task's phrasings (SynthMath) or relations (SynthHop) include a confused key.

    The family's ``confusions`` name the misconceptions its base model holds; these
    problems are the "misconception" split of every evaluation.
    """
    keys = list(task_meta.get("phrasings", ())) + list(task_meta.get("relations", ()))
    return any(key in confusions for key in keys)


def train_config(config: RunConfig, seed: int, model: str | Path, out_dir: str | Path, **overrides):
    """Stage 2's ``TrainConfig``: the config's ``train`` settings (shared by SWiRL and the
    controls, so they train on the same budget), resumable, for one seed."""
    from swirl_agents.train import TrainConfig

    return TrainConfig.from_dict({
        "max_new_tokens": config.generate.max_new_tokens,
        "progress": True,
        **config.train.settings,
        "model": str(model),
        "out_dir": str(out_dir),
        "resume": True,
        "seed": seed,
        "device": config.device or None,
        "prompt_format": config.model.prompt_format,
        **overrides,
    })  # fmt: skip


def warmup_config(config: RunConfig, seed: int, model: str | Path, out_dir: str | Path, steps: int):
    """The base model's warm-up: SFT with the config's ``warmup`` settings for ``steps`` steps."""
    settings = {
        "warmup_steps": max(1, steps // 20),
        **config.warmup.settings,
        "objective": "sft",
        "steps": steps,
    }
    return train_config(config, seed, model, out_dir, **settings)


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


def sample_and_filter(
    config: RunConfig, family: FamilyConfig, env, model: str, seed: int, folder: Path, *, log=print
) -> tuple[list, dict[str, Any]]:
    """Stage 1 (``folder/samples``), then judging and filtering (``folder/judge``).

    Returns:
        The kept trajectories in task order, and both stages' summaries.
    """
    from swirl_agents.store import load_in_task_order

    samples = folder / "samples" / "trajectories.jsonl"
    judged = folder / "judge" / "judged.jsonl"
    filtered = folder / "judge" / "filtered.jsonl"
    settings = JudgeSettings(process=config.judge.process, outcome=config.judge.outcome)

    def sample() -> dict[str, Any]:
        policy = model_policy(
            model, temperature=config.generate.temperature,
            max_new_tokens=config.generate.max_new_tokens, device=config.device or None,
            prompt_format=config.model.prompt_format,
        )  # fmt: skip
        return generate(
            env, policy, samples, samples=family.samples or config.generate.samples, seed=seed,
            batch_size=config.generate.batch_size, num_tasks=family.train_tasks,
        )  # fmt: skip

    def judge_and_filter() -> dict[str, Any]:
        judge(samples, judged, settings, log=lambda _: None)
        return filter_file(judged, filtered, config.judge.filter)

    stages = {
        "samples": run_stage(folder / "samples", f"{family.name}/samples", sample, log=log),
        "judge": run_stage(folder / "judge", f"{family.name}/judge", judge_and_filter, log=log),
    }
    return load_in_task_order(filtered), stages


def evaluate_models(
    config: RunConfig,
    family: FamilyConfig,
    seed: int,
    models: dict[str, str],
    folder: Path,
    *,
    log=print,
) -> dict[str, dict[str, Any]]:
    """Every model on the held-out questions at every temperature: ``{model: {"0": report}}``.

    Each evaluation is a stage ``folder/MODEL-tT`` (skipped when done); accuracy is also
    split by the family's misconception problems.
    """
    env = held_out_env(family, seed)
    group = functools.partial(uses_confusion, confusions=family.confusions)

    def run(path: str, temperature: float, label: str) -> dict[str, Any]:
        policy = model_policy(
            path, temperature=temperature, max_new_tokens=config.eval.max_new_tokens,
            device=config.device or None, prompt_format=config.model.prompt_format,
        )  # fmt: skip
        report = evaluate(
            env, policy, folder / label / "trajectories.jsonl", seed=seed,
            batch_size=config.eval.batch_size, num_tasks=family.test_tasks, group=group,
        )  # fmt: skip
        return {**report, "model": str(path), "temperature": temperature}

    evaluations: dict[str, dict[str, Any]] = {}
    for name, path in models.items():
        for temperature in config.eval.temperatures:
            label = f"{name}-t{temperature:g}"
            evaluations.setdefault(name, {})[f"{temperature:g}"] = run_stage(
                folder / label,
                f"{family.name}/eval/{label}",
                functools.partial(run, path, temperature, label),
                log=log,
            )
    return evaluations

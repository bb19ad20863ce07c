"""The paper's ablations at tiny scale, on the CPU demo's generated task families.

Goldie et al. (2025) ablate three choices of SWiRL; this script measures each on the
demo's tiny model (``swirl demo``, ``docs/demo.md``) and sets the paper's claim beside
every row:

1. **Filters, data size held fixed.** From one family's judged stage-1 samples
   (``judge/judged.jsonl`` of a demo run), each filter (none, process, outcome,
   process+outcome) keeps a set; every set is subsampled (seeded) to the same N
   trajectories (the smallest kept set, or ``--data-size``) and trains offline SWiRL
   from the base model, with the config's ``train`` steps and learning rate.
2. **SWiRL vs SFT on the same data.** The process-filtered and the unfiltered sets of (1)
   trained with the SFT objective instead.
3. **Cross-task transfer.** One model that knows both families (a tokenizer over both
   training sets, warmed up on both families' warm-up data), SWiRL on SynthHop's
   process-filtered samples only, evaluated on SynthMath (and SynthHop, for reference).

Every model is evaluated on the family's test split, greedy and T = 1, accuracy overall
and on the misconception problems. Usage::

    python benchmarks/ablations.py                                  # both families, seed 0
    python benchmarks/ablations.py --demo-run runs/demo-s0 --families math --out /tmp/abl
    python benchmarks/ablations.py --quick --out /tmp/abl-quick     # minutes; learns little

The demo's own stages (warm-up data, base model, stage-1 samples, judging) come from
``--demo-run`` when it has them and are run there (``run_family``) when it does not; its
``config.yaml`` must agree with this run's config. Every training and evaluation is a
``pipeline.run_stage`` under ``--out``, so an interrupted run resumes where it stopped.
Prints markdown tables, writes JSON (``--json``) and a bar plot beside it (``.png``).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import itertools
import random
import statistics
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from swirl_agents.config import (
    ConfigError,
    FamilyConfig,
    RunConfig,
    add_run_config_flags,
    load_config,
    run_config_overrides,
    save_config,
)
from swirl_agents.demo import run_family
from swirl_agents.filters import FILTER_MODES, filter_trajectories
from swirl_agents.report import decoding_label, mean_and_range
from swirl_agents.stages import run_stage, train, write_json
from swirl_agents.stages.recipe import (
    build_tiny,
    evaluate_models,
    sample_and_filter,
    train_config,
    train_env,
    warmup_config,
)
from swirl_agents.store import load_in_task_order, write_trajectories

T = TypeVar("T")

SFT_FILTERS = ("process", "none")
"""The sets SFT is trained on, each against SWiRL on the same set. On the process-filtered
set the paper's comparison; but a 0/1 process judge gives every step of it reward 1, so
there the two objectives differ only in how the loss is averaged (per action against per
token). On the unfiltered set SWiRL weights bad steps 0 and SFT imitates them."""

VARIANTS = (
    *(f"swirl-{mode}" for mode in FILTER_MODES),
    *(f"sft-{mode}" for mode in SFT_FILTERS),
)
"""Trained variants of ablations 1 and 2, in table order."""

LABELS = {
    "base": "base (demo)",
    "demo-swirl": "SWiRL, every kept trajectory (demo)",
    "swirl-none": "SWiRL, no filter",
    "swirl-process": "SWiRL, process filter",
    "swirl-outcome": "SWiRL, outcome filter",
    "swirl-process+outcome": "SWiRL, process+outcome filter",
    "sft-process": "SFT, process filter",
    "sft-none": "SFT, no filter",
}

PAPER = {
    "swirl-none": "below process-only",
    "swirl-process": "best filter",
    "swirl-outcome": "below no filter (except MuSiQue)",
    "swirl-process+outcome": "below no filter (except MuSiQue)",
    "sft-process": "below SWiRL; can fall below the base",
    "sft-none": "below SWiRL; can fall below the base",
}
"""Goldie et al. (2025), the filter and SFT ablations, per row."""

PAPER_TRANSFER_GAIN = 16.9
"""Goldie et al. (2025): SWiRL on HotPotQA only lifts GSM8K accuracy by 16.9% (relative)."""

DEFAULT_OUT = "runs/ablations"

UNCOMPARED = ("out_dir", "seeds", "threads", "workers", "device", "families")
"""Config keys that do not change what a stage computes (families are compared one by one)."""


def subsample(items: Sequence[T], size: int, seed: int) -> list[T]:
    """``size`` of ``items`` drawn without replacement from ``seed``, in their input order.

    The filter ablation trains every variant on the same number of trajectories, so a
    filter that keeps more data does not win by data size alone.

    Raises:
        ValueError: ``size`` is negative or larger than ``items``.
    """
    if not 0 <= size <= len(items):
        raise ValueError(f"cannot draw {size} of {len(items)} items")
    chosen = sorted(random.Random(seed).sample(range(len(items)), size))
    return [items[index] for index in chosen]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """``swirl demo``'s config flags (``--config``, ``--seeds``, ``--set``...), then our own."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_run_config_flags(parser)
    parser.add_argument("--quick", action="store_true", help="`swirl demo --quick`'s sizes")
    parser.add_argument(
        "--demo-run",
        help="a `swirl demo` output folder to reuse (default: OUT/demo, run as needed)",
    )
    parser.add_argument(
        "--families",
        nargs="*",
        help="families for the filter ablation (default: all; none: `--families` alone)",
    )
    parser.add_argument(
        "--transfer",
        default="hop:math",
        help="SOURCE:TARGET families of the transfer ablation, or 'none' (default hop:math)",
    )
    parser.add_argument(
        "--data-size",
        type=int,
        help="trajectories per filter variant (default: the smallest kept set)",
    )
    parser.add_argument("--json", default="results/ablations.json", help="JSON output")
    args = parser.parse_args(argv)
    if args.data_size is not None and args.data_size < 1:
        parser.error(f"--data-size must be at least 1, got {args.data_size}")
    args.out = args.out or DEFAULT_OUT
    return args


def run(argv: Sequence[str] | None = None, *, log: Callable[[str], None] = print) -> dict:
    """Run the ablations; returns what is written to ``--json``."""
    args = parse_args(argv)
    try:
        config = load_config(args.config, run_config_overrides(args))
    except (ValueError, OSError) as error:  # ConfigError is a ValueError
        raise SystemExit(f"ablations: {error}") from None
    names = [f.name for f in config.families] if args.families is None else args.families
    families = _pick(config, names)
    transfer = None
    if args.transfer != "none":
        source, _, target = args.transfer.partition(":")
        if source == target:
            raise SystemExit(f"ablations: --transfer {args.transfer}: two different families")
        transfer = _pick(config, [source, target])
    out = Path(config.out_dir)
    demo_run = Path(args.demo_run) if args.demo_run else out / "demo"
    for folder in (out, demo_run):
        _check_config(folder / "config.yaml", config, [*families, *(transfer or [])])
    save_config(config, out / "config.yaml")
    if not (demo_run / "config.yaml").is_file():
        save_config(config, demo_run / "config.yaml")

    import torch

    torch.set_num_threads(config.threads)
    results: dict[str, Any] = {
        "config": config.to_dict(),
        "demo_run": str(demo_run),
        "data_size": args.data_size,
        "seeds": {},
    }
    for seed in config.seeds:
        per_seed: dict[str, Any] = {}
        for family in families:
            log(f"== seed {seed}, {family.name}: the demo's stages in {demo_run} ==")
            demo_folder = demo_run / f"seed-{seed}" / family.name
            demo = run_family(config, family, seed, demo_folder, log=log)
            per_seed[family.name] = filter_ablation(
                config, family, seed, demo_folder, demo["eval"],
                out / f"seed-{seed}" / family.name, args.data_size, log,
            )  # fmt: skip
        if transfer is not None:
            source, target = transfer
            for family in transfer:  # the joint base is warmed up on the demo's warm-up data
                if family not in families:
                    run_family(
                        config, family, seed, demo_run / f"seed-{seed}" / family.name, log=log
                    )
            per_seed["transfer"] = transfer_ablation(
                config, source, target, seed, demo_run / f"seed-{seed}",
                out / f"seed-{seed}" / f"transfer-{source.name}-{target.name}", log,
            )  # fmt: skip
        results["seeds"][str(seed)] = per_seed
    results["table"] = format_tables(results)
    log(results["table"])
    json_path = Path(args.json)
    write_json(json_path, results)
    plot(results, json_path.with_suffix(".png"))
    log(f"written: {json_path} and {json_path.with_suffix('.png')}")
    return results


def _pick(config: RunConfig, names: Sequence[str]) -> list[FamilyConfig]:
    by_name = {family.name: family for family in config.families}
    unknown = [name for name in names if name not in by_name]
    if unknown:
        raise SystemExit(f"ablations: unknown family {unknown}; the config has {list(by_name)}")
    return [by_name[name] for name in names]


def _check_config(path: Path, config: RunConfig, families: Sequence[FamilyConfig]) -> None:
    """Refuse to reuse stages made by a config that differs in anything they depend on."""
    if not path.is_file():
        return
    try:
        theirs = load_config(path).to_dict()
    except ConfigError as error:
        raise SystemExit(f"ablations: {error}") from None
    ours = config.to_dict()
    keys = [key for key in ours if key not in UNCOMPARED and ours[key] != theirs[key]]
    their_families = {family["name"]: family for family in theirs["families"]}
    keys += [
        f"families[{family['name']}]"
        for family in map(dataclasses.asdict, families)
        if their_families.get(family["name"], family) != family
    ]
    if keys:
        raise SystemExit(
            f"ablations: {path} was made with other settings ({', '.join(keys)}); "
            "pass the same --config/--set, or another --out/--demo-run"
        )


# ---- ablations 1 and 2: filters at a fixed data size, SWiRL vs SFT --------------------------


def filter_ablation(
    config: RunConfig,
    family: FamilyConfig,
    seed: int,
    demo_folder: Path,
    demo_eval: dict[str, Any],
    folder: Path,
    data_size: int | None,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Train and evaluate every variant of ``VARIANTS`` on N trajectories of one family.

    The folder is ``folder/nN``, so runs at different data sizes keep their own stages.
    """
    from swirl_agents.judges.trajectories import JudgedTrajectory

    judged = [
        JudgedTrajectory.from_trajectory(t)
        for t in load_in_task_order(demo_folder / "judge" / "judged.jsonl")
    ]
    kept = {mode: filter_trajectories(judged, mode) for mode in FILTER_MODES}
    sizes = {mode: result.trajectories_kept for mode, result in kept.items()}
    reference = {"base": demo_eval["base"]}
    if "swirl" in demo_eval:
        reference["demo-swirl"] = demo_eval["swirl"]
    result: dict[str, Any] = {"kept": sizes, "judged": len(judged), "eval": reference}
    size = min(sizes.values()) if data_size is None else data_size
    if size > min(sizes.values()):
        raise SystemExit(
            f"ablations: --data-size {size} is more than a filter kept for {family.name} "
            f"(kept: {sizes})"
        )
    if size == 0:
        result["skipped"] = (
            f"a filter kept no trajectory (kept: {sizes}): the base model solved too little "
            "of stage 1; a longer warm-up (not --quick) gives the filters something to keep"
        )
        log(f"[{family.name}/filters] skipped: {result['skipped']}")
        return result
    folder = folder / f"n{size}"
    name = f"{family.name}/n{size}"
    result["data_size"] = size

    def subsets() -> dict[str, Any]:
        steps = {}
        for mode in FILTER_MODES:
            chosen = subsample(kept[mode].kept, size, seed)
            write_trajectories(
                folder / "data" / f"{mode}.jsonl", [item.to_trajectory() for item in chosen]
            )
            steps[mode] = sum(len(item.trajectory.steps) for item in chosen)
        return {
            "trajectories": size,
            "steps": steps,
            "summary": f"{size} trajectories per filter (kept: {sizes}); steps: {steps}",
        }

    data = run_stage(folder / "data", f"{name}/data", subsets, log=log)
    result["steps"] = data["steps"]
    base = str(demo_folder / "base" / "final") if not config.model.path else config.model.path
    for variant in VARIANTS:
        objective, mode = variant.split("-", 1)
        settings = train_config(
            config, seed, base, folder / variant, objective=_OBJECTIVES[objective]
        )
        run_stage(
            folder / variant,
            f"{name}/{variant}",
            functools.partial(_train_on_file, settings, folder / "data" / f"{mode}.jsonl"),
            log=log,
        )
    trained = {variant: str(folder / variant / "final") for variant in VARIANTS}
    result["eval"].update(evaluate_models(config, family, seed, trained, folder / "eval", log=log))
    return result


_OBJECTIVES = {"swirl": "swirl-offline", "sft": "sft"}


def _train_on_file(settings: Any, data: Path) -> dict[str, Any]:
    return train(settings, load_in_task_order(data))


# ---- ablation 3: cross-task transfer ---------------------------------------------------------


def transfer_ablation(
    config: RunConfig,
    source: FamilyConfig,
    target: FamilyConfig,
    seed: int,
    demo_seed_folder: Path,
    folder: Path,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Joint base model, SWiRL on ``source`` only, both evaluated on ``target`` and ``source``.

    The joint base's warm-up runs ``warmup.steps`` per family, so each family gets as
    many passes over its warm-up data as its own demo base model did.
    """
    from swirl_agents.tiny import tiny_corpus

    name = folder.name
    source_train = train_env(source, seed)
    stages: dict[str, Any] = {}
    if config.model.path:
        base = config.model.path
    else:
        warmup_data = [
            trajectory
            for family in (source, target)
            for trajectory in load_in_task_order(
                demo_seed_folder / family.name / "warmup-data" / "trajectories.jsonl", sample=0
            )
        ]
        envs = [train_env(family, seed) for family in (source, target)]
        texts = itertools.chain(tiny_corpus(envs), (t.transcript for t in warmup_data))
        stages["init"] = run_stage(
            folder / "init",
            f"{name}/init",
            lambda: build_tiny(config, texts, folder / "init", seed),
            log=log,
        )
        steps = 2 * config.warmup.settings["steps"]
        warmup = warmup_config(config, seed, folder / "init", folder / "base", steps)
        stages["base"] = run_stage(
            folder / "base", f"{name}/base", lambda: train(warmup, warmup_data), log=log
        )
        base = str(folder / "base" / "final")
    kept, sampled = sample_and_filter(config, source, source_train, base, seed, folder, log=log)
    stages.update(sampled)
    trained = f"swirl-{source.name}"
    models = {"base": base, trained: str(folder / trained / "final")}
    if kept:
        settings = train_config(config, seed, base, folder / trained, objective="swirl-offline")
        stages[trained] = run_stage(
            folder / trained, f"{name}/{trained}", lambda: train(settings, kept), log=log
        )
    else:  # nothing to learn from: the trained model is the base model, and the table says so
        stages[trained] = {"summary": f"no trajectory passed the {config.judge.filter} filter"}
        models[trained] = base
        log(f"[{name}/{trained}] {stages[trained]['summary']}: it is the base model")
    evaluations = {
        family.name: evaluate_models(
            config, family, seed, models, folder / "eval" / family.name, log=log
        )
        for family in (target, source)
    }
    gains = {
        temperature: _relative(
            evaluations[target.name][trained][temperature]["accuracy"],
            evaluations[target.name]["base"][temperature]["accuracy"],
        )
        for temperature in evaluations[target.name]["base"]
    }
    return {
        "source": source.name,
        "target": target.name,
        "kept": len(kept),
        "stages": {key: value.get("summary", "") for key, value in stages.items()},
        "eval": evaluations,
        "relative_gain_percent": gains,
    }


def _relative(accuracy: float, base: float) -> float | None:
    """Relative change in percent (the paper's measure); None when the base scored 0."""
    return None if base == 0 else 100 * (accuracy - base) / base


# ---- table and plot --------------------------------------------------------------------------


def _per_seed(results: dict[str, Any], *keys: str) -> list[Any]:
    """``results["seeds"][seed][key0][key1]...`` for every seed that has it."""
    values = []
    for node in results["seeds"].values():
        for key in keys:
            node = node.get(key) if isinstance(node, dict) else None
        if node is not None:
            values.append(node)
    return values


def _families(results: dict[str, Any]) -> list[str]:
    """The ablated families, in the order they ran."""
    names = [name for per_seed in results["seeds"].values() for name in per_seed]
    return [name for name in dict.fromkeys(names) if name != "transfer"]


def _count(values: list[int]) -> str:
    """A data size: one number, or the range over seeds."""
    if not values:
        return "-"
    low, high = min(values), max(values)
    return str(low) if low == high else f"{low}-{high}"


def format_tables(results: dict[str, Any]) -> str:
    """Markdown: one table per family (filters and SFT), one for transfer, and the checks."""
    temperatures = [f"{t:g}" for t in results["config"]["eval"]["temperatures"]]
    families = _families(results)
    lines = [
        "Cells: test accuracy % overall / on misconception problems"
        + (" (mean over seeds, [min-max])" if len(results["seeds"]) > 1 else "")
        + "."
    ]
    for family in families:
        sizes = _per_seed(results, family, "data_size")
        lines += ["", f"### {family}: filters at a fixed data size, SWiRL vs SFT", ""]
        skipped = _per_seed(results, family, "skipped")
        if skipped:
            lines += [f"Skipped: {reason}" for reason in skipped] + [""]
        header = ["variant", "trajectories"]
        header += [f"{decoding_label(t)} all / misc." for t in temperatures] + ["paper"]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for variant in ("base", "demo-swirl", *VARIANTS):
            row = [LABELS[variant], _count(sizes) if variant in VARIANTS else "-"]
            for t in temperatures:
                accuracy = _per_seed(results, family, "eval", variant, t)
                if not accuracy:
                    row.append("-")
                    continue
                row.append(
                    f"{mean_and_range([r['accuracy'] for r in accuracy], digits=1)} / "
                    f"{mean_and_range([r['in_group'] for r in accuracy], digits=1)}"
                )
            if row[2:] == ["-"] * len(temperatures):
                continue
            lines.append("| " + " | ".join([*row, PAPER.get(variant, "")]) + " |")
        checks = _checks(results, family, temperatures)
        lines += ["", *checks] if checks else []
    transfer = _per_seed(results, "transfer")
    if transfer:
        source, target = transfer[0]["source"], transfer[0]["target"]
        trained = f"swirl-{source}"
        lines += ["", f"### transfer: SWiRL on {source} only, evaluated on {target}", ""]
        header = ["model"] + [
            f"{family} {decoding_label(t)}" for family in (target, source) for t in temperatures
        ]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for model, label in (("base", "joint base"), (trained, f"SWiRL on {source} only")):
            row = [label]
            for family in (target, source):
                for t in temperatures:
                    reports = [r["eval"][family][model][t] for r in transfer]
                    row.append(
                        f"{mean_and_range([r['accuracy'] for r in reports], digits=1)} / "
                        f"{mean_and_range([r['in_group'] for r in reports], digits=1)}"
                    )
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
        kept = ", ".join(str(r["kept"]) for r in transfer)
        for t in temperatures:
            gains = [r["relative_gain_percent"][t] for r in transfer]
            measured = ", ".join("n/a (base 0)" if g is None else f"{g:+.1f}%" for g in gains)
            lines.append(
                f"- {target} {decoding_label(t)}: relative change {measured} (paper, HotPotQA -> "
                f"GSM8K: +{PAPER_TRANSFER_GAIN}%); {source} trajectories kept: {kept}"
            )
    return "\n".join(lines)


def _checks(results: dict[str, Any], family: str, temperatures: list[str]) -> list[str]:
    """The paper's claims, each checked per seed and decoding against what was measured."""
    lines = []
    for seed, per_seed in results["seeds"].items():
        evals = per_seed.get(family, {}).get("eval", {})
        if not all(variant in evals for variant in VARIANTS):
            continue
        for t in temperatures:
            accuracy = {v: evals[v][t]["accuracy"] for v in ("base", *VARIANTS)}
            filters = {mode: accuracy[f"swirl-{mode}"] for mode in FILTER_MODES}
            best = max(filters.values())
            winners = [mode for mode, value in filters.items() if value == best]
            outcome_below = [
                mode for mode in ("outcome", "process+outcome") if filters[mode] < filters["none"]
            ]
            versus_sft = "; ".join(
                f"SWiRL - SFT on the {mode} set {_points(accuracy, f'swirl-{mode}', f'sft-{mode}')}"
                f", SFT - base {_points(accuracy, f'sft-{mode}', 'base')}"
                for mode in SFT_FILTERS
            )
            lines.append(
                f"- seed {seed}, {decoding_label(t)}: best filter {' = '.join(winners)} "
                f"({100 * best:.1f}); below no filter: {', '.join(outcome_below) or 'neither'} "
                f"of outcome, process+outcome; {versus_sft}"
            )
    return lines


def _points(accuracy: dict[str, float], a: str, b: str) -> str:
    return f"{100 * (accuracy[a] - accuracy[b]):+.1f} points"


def plot(results: dict[str, Any], path: Path) -> Path | None:
    """Bar plot: accuracy of every variant (one panel per family, and transfer), per decoding."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    temperatures = [f"{t:g}" for t in results["config"]["eval"]["temperatures"]]
    panels: list[tuple[str, list[tuple[str, list[list[float]]]]]] = []
    families = _families(results)
    for family in families:
        bars = []
        for variant in ("base", *VARIANTS):
            per_t = [
                [r["accuracy"] for r in _per_seed(results, family, "eval", variant, t)]
                for t in temperatures
            ]
            if any(per_t):
                bars.append((LABELS[variant].replace(" (demo)", ""), per_t))
        if bars:
            panels.append((family, bars))
    transfer = _per_seed(results, "transfer")
    if transfer:
        source, target = transfer[0]["source"], transfer[0]["target"]
        bars = []
        for family in (target, source):
            for model in ("base", f"swirl-{source}"):
                label = f"{'joint base' if model == 'base' else f'SWiRL on {source}'}\non {family}"
                bars.append(
                    (label, [[r["eval"][family][model][t]["accuracy"] for r in transfer]
                             for t in temperatures])
                )  # fmt: skip
        panels.append((f"transfer {source} -> {target}", bars))
    if not panels:
        return None
    figure, axes = plt.subplots(
        1, len(panels), figsize=(4 + 1.3 * max(len(b) for _, b in panels), 4.5), squeeze=False
    )
    width = 0.8 / len(temperatures)
    for axis, (title, bars) in zip(axes[0], panels, strict=True):
        for number, t in enumerate(temperatures):
            means = [100 * statistics.fmean(v[number]) if v[number] else 0.0 for _, v in bars]
            positions = [i + number * width for i in range(len(bars))]
            axis.bar(positions, means, width, label=decoding_label(t))
        axis.set_xticks([i + 0.4 - width / 2 for i in range(len(bars))])
        axis.set_xticklabels([label for label, _ in bars], rotation=35, ha="right", fontsize=7)
        axis.set_title(title)
        axis.set_ylabel("test accuracy %")
        axis.set_ylim(0, 100)
        axis.legend(fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def main() -> int:
    run(sys.argv[1:])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The demo's report: a one-screen table, ``report.md`` and PNG plots (matplotlib, no display).

Rows are the models (base, SWiRL, the controls); columns are family x decoding, each
cell ``overall / misconception`` accuracy in percent, averaged over seeds with the
spread (min-max) when there are several.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from swirl_agents.config import RunConfig

_LABELS = {
    "base": "base",
    "swirl": "SWiRL",
    "sft": "SFT-unfiltered",
    "compute-matched": "compute-matched",
}


def cells(results: dict[str, Any]) -> dict[tuple[str, str, str], dict[str, list[float]]]:
    """``(model, family, temperature) -> {"accuracy": [per seed], "in_group": [...]}``."""
    table: dict[tuple[str, str, str], dict[str, list[float]]] = {}
    for families in results["seeds"].values():
        for family, result in families.items():
            for model, decodings in result["eval"].items():
                for temperature, report in decodings.items():
                    cell = table.setdefault(
                        (model, family, temperature), {"accuracy": [], "in_group": []}
                    )
                    cell["accuracy"].append(report["accuracy"])
                    if "in_group" in report:
                        cell["in_group"].append(report["in_group"])
    return table


def format_table(results: dict[str, Any]) -> str:
    """The results as a markdown table (also readable on a terminal)."""
    table = cells(results)
    models = _ordered(key[0] for key in table)
    columns = sorted({(key[1], key[2]) for key in table}, key=lambda c: (c[0], float(c[1])))
    header = ["model"] + [f"{family} {decoding_label(t)} all / misc." for family, t in columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for model in models:
        row = [_LABELS.get(model, model)]
        for family, temperature in columns:
            cell = table.get((model, family, temperature))
            row.append(
                "-"
                if cell is None
                else f"{mean_and_range(cell['accuracy'])} / {mean_and_range(cell['in_group'])}"
            )
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def gains(results: dict[str, Any]) -> list[str]:
    """One line per family and decoding: SWiRL minus each other model, per seed (points)."""
    lines = []
    for seed, families in results["seeds"].items():
        for family, result in families.items():
            evals = result["eval"]
            if "swirl" not in evals:
                continue
            for temperature, report in evals["swirl"].items():
                for model in evals:
                    if model != "swirl":
                        delta = 100 * (report["accuracy"] - evals[model][temperature]["accuracy"])
                        lines.append(
                            f"seed {seed}, {family} {decoding_label(temperature)} "
                            f"SWiRL - {model}: {delta:+.1f}"
                        )
    return lines


def write_report(config: RunConfig, results: dict[str, Any], out: Path, *, log=print) -> Path:
    """Print the table and write ``report.md`` with ``accuracy.png`` and ``learning_curves.png``."""
    table = format_table(results)
    log(table)
    plots = [
        _accuracy_plot(results, out / "accuracy.png"),
        _curves_plot(results, out / "learning_curves.png"),
    ]
    stages = []
    for seed, families in results["seeds"].items():
        for family, result in families.items():
            for name, summary in result["stages"].items():
                stages.append(
                    f"- seed {seed}, {family}, {name}: {summary.get('summary', '')} "
                    f"({summary.get('seconds')} s)"
                )
    text = "\n".join(
        [
            "# SWiRL demo report",
            "",
            f"Seeds: {', '.join(str(s) for s in config.seeds)}; families: "
            f"{', '.join(f.name for f in config.families)}. Cells: test accuracy % overall / on "
            "misconception problems (mean over seeds, min-max in brackets).",
            "",
            table,
            "",
            "## Gains per seed (accuracy points)",
            "",
            *[f"- {line}" for line in gains(results)],
            "",
            "## Plots",
            "",
            *[f"![{p.stem}]({p.name})" for p in plots if p is not None],
            "",
            "## Stages",
            "",
            *stages,
            "",
            "The resolved config is in `config.yaml`; per-model results in `results.json`.",
            "",
        ]
    )
    path = out / "report.md"
    path.write_text(text, encoding="utf-8")
    log(f"report written to {path}")
    return path


def _accuracy_plot(results: dict[str, Any], path: Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = cells(results)
    if not table:
        return None
    models = _ordered(key[0] for key in table)
    columns = sorted({(key[1], key[2]) for key in table}, key=lambda c: (c[0], float(c[1])))
    figure, axis = plt.subplots(figsize=(2 + 1.8 * len(columns), 4))
    width = 0.8 / len(models)
    for number, model in enumerate(models):
        means, errors = [], [[], []]
        for column in columns:
            values = [100 * v for v in table.get((model, *column), {"accuracy": []})["accuracy"]]
            mean = statistics.fmean(values) if values else 0.0
            means.append(mean)
            errors[0].append(mean - min(values, default=mean))
            errors[1].append(max(values, default=mean) - mean)
        positions = [i + number * width for i in range(len(columns))]
        axis.bar(positions, means, width, yerr=errors, label=_LABELS.get(model, model))
    axis.set_xticks([i + 0.4 - width / 2 for i in range(len(columns))])
    axis.set_xticklabels([f"{family}\n{decoding_label(t)}" for family, t in columns])
    axis.set_ylabel("test accuracy %")
    axis.set_ylim(0, 100)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def _curves_plot(results: dict[str, Any], path: Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = []
    for seed, families in results["seeds"].items():
        for family, result in families.items():
            for name, summary in result["stages"].items():
                model = summary.get("model")
                metrics = Path(model).parent / "metrics.jsonl" if model else None
                if metrics is not None and metrics.is_file():
                    runs.append((family, f"{name} (seed {seed})", metrics))
    if not runs:
        return None
    families = sorted({family for family, _, _ in runs})
    figure, axes = plt.subplots(1, len(families), figsize=(5 * len(families), 3.5), squeeze=False)
    for axis, family in zip(axes[0], families, strict=True):
        for _, label, metrics in (run for run in runs if run[0] == family):
            points = [
                json.loads(line)
                for line in metrics.read_text(encoding="utf-8").splitlines()
                if line
            ]
            axis.plot(
                [p["step"] for p in points], [p["loss"] for p in points], label=label, linewidth=1
            )
        axis.set_title(family)
        axis.set_xlabel("step")
        axis.set_ylabel("training loss")
        axis.set_yscale("log")
        axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def _ordered(models) -> list[str]:
    order = list(_LABELS)
    return sorted(set(models), key=lambda m: order.index(m) if m in order else len(order))


def decoding_label(temperature: str) -> str:
    """``"greedy"`` for temperature 0, else ``"T=1"`` and the like."""
    return "greedy" if float(temperature) == 0 else f"T={float(temperature):g}"


def mean_and_range(values: list[float], digits: int = 0) -> str:
    """Accuracies over seeds in %: the mean, and the min-max range (``digits`` decimals)."""
    if not values:
        return "-"
    mean = 100 * statistics.fmean(values)
    if len(values) == 1:
        return f"{mean:.1f}"
    return f"{mean:.1f} [{100 * min(values):.{digits}f}-{100 * max(values):.{digits}f}]"

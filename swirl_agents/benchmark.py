"""Evaluate a policy on a real benchmark's files and set the result beside the paper's Table 2.

What ``benchmarks/gsm8k.py``, ``hotpotqa.py`` and ``musique.py`` share: each names a
``Benchmark`` (its env id and the paper's numbers) and calls ``main``, which runs the
stage layer's ``evaluate`` (``swirl_agents.stages``). One run

1. rolls the policy out on the first ``limit`` questions of the file, ``samples``
   episodes each, into ``OUT/episodes.jsonl`` (a ``TrajectoryStore``: a rerun skips
   the episodes already there, so a killed run resumes);
2. with a judge, asks it the paper's outcome question for every episode and keeps
   the verdicts in ``OUT/judged-<judge>.jsonl`` (the same trajectories with
   ``meta["judgements"]``, also resumable) and ``OUT/judged-<judge>.sqlite`` (a cache);
3. writes ``OUT/summary.json`` (accuracy by EM or numeric equality, F1 for QA, judge
   accuracy, mean steps, tool calls and tokens, wall time) and prints a table laid
   out like Table 2 of Goldie et al. (2025), with the paper's numbers beside ours.

The paper's numbers are judge accuracy of Gemma-2-27B before and after SWiRL, on
the paper's own prompts, data subsets and judge; ours are comparable only when the
same kind of judge is given.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from swirl_agents.flags import add_flags, from_flags

PAPER_TABLE2: dict[str, tuple[float, float]] = {
    "GSM8K": (0.65, 0.79),
    "HotPotQA": (0.65, 0.73),
    "MuSiQue": (0.45, 0.50),
    "CofCA": (0.54, 0.62),
    "BeerQA": (0.59, 0.68),
}
"""Table 2 of Goldie et al. (2025): Gemma-2-27B judge accuracy, base and after SWiRL."""

PAPER_MODEL = "Gemma-2-27B"


@dataclass(frozen=True)
class Benchmark:
    """One dataset's benchmark script.

    Attributes:
        name: The dataset's name as Table 2 spells it (a key of ``PAPER_TABLE2``).
        env_id: The env that loads its files.
        metric: What the env's reward measures (``"EM"`` or ``"numeric"``).
        has_search: QA datasets take ``--search``; GSM8K has no search tool.
    """

    name: str
    env_id: str
    metric: str
    has_search: bool


@dataclass
class BenchmarkArgs:
    """Arguments of a benchmark script (every field is a ``--flag``)."""

    data: str = ""
    """The dataset's file or folder (required)."""
    split: str | None = None
    """The split to read (default: the env's, test for GSM8K and dev for QA)."""
    policy: str = "oracle"
    """The policy: oracle, noisy-oracle, random, hf:PATH or openai:BASE_URL (with --model)."""
    model: str | None = None
    """The served model's name (openai: policies)."""
    noise: float = 0.3
    """Step error rate of noisy-oracle."""
    judge: str = "none"
    """The outcome judge of judge accuracy (the paper's metric): none, programmatic, hf:PATH or
    openai:BASE_URL (with --judge-model)."""
    judge_model: str | None = None
    """The served judge model's name (openai: judges)."""
    limit: int | None = None
    """Evaluate the first N questions only."""
    samples: int = 1
    """Episodes per question."""
    temperature: float = 0.0
    """Sampling temperature of model policies (0: greedy)."""
    max_new_tokens: int = 256
    """Cap on one action's tokens."""
    batch_size: int = 32
    """Live episodes at once (the policy's batch)."""
    search: str = "distractor"
    """QA only: distractor (each question's paragraphs), open (every paragraph of the file) or a
    corpus path."""
    device: str | None = None
    """hf: policies and judges: torch device (default: cuda when available)."""
    prompt_format: str = "auto"
    """hf: policies: text, chat or auto."""
    concurrency: int = 8
    """openai: policies and judges: requests in flight."""
    seed: int = 0
    """Run seed (each episode's sampling seed derives from it)."""
    out: str | None = None
    """Output folder (default: results/<dataset>/<policy>)."""


def parse_args(benchmark: Benchmark, argv: Sequence[str] | None = None) -> BenchmarkArgs:
    """Read ``BenchmarkArgs`` from the command line (``--search`` only for QA datasets)."""
    parser = argparse.ArgumentParser(
        description=f"Evaluate a policy on {benchmark.name} and compare with the paper's Table 2."
    )
    skip = () if benchmark.has_search else ("search",)
    add_flags(parser, BenchmarkArgs, skip=skip, required=("data",))
    return from_flags(BenchmarkArgs, parser.parse_args(argv))


def main(benchmark: Benchmark, argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run a benchmark script: parse arguments, evaluate, print the table, return the summary."""
    args = parse_args(benchmark, argv)
    try:
        summary = run_benchmark(benchmark, args)
    except ValueError as error:
        raise SystemExit(f"{benchmark.name}: {error}") from None
    print(format_table(summary))
    print(f"\nper-question: {summary['files']['episodes']}; summary: {summary['files']['summary']}")
    return summary


def run_benchmark(benchmark: Benchmark, args: BenchmarkArgs) -> dict[str, Any]:
    """Evaluate ``args.policy`` on the benchmark and write the per-question and summary files.

    Returns:
        The summary (also written to ``OUT/summary.json``).

    Raises:
        ValueError: Bad arguments or data, or ``OUT`` holds episodes of another
            policy or other env settings (resuming would mix two runs).
    """
    from swirl_agents.policies import SamplingSettings, make_policy
    from swirl_agents.stages import JudgeSettings, close_policy, evaluate, make_env, write_json

    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be at least 1, got {args.limit}")
    judge = None
    if args.judge != "none":
        judge = JudgeSettings(
            outcome=args.judge, judge_model=args.judge_model, concurrency=args.concurrency,
            device=args.device,
        )  # fmt: skip
        judge.check()
    started = time.perf_counter()  # wall time includes loading the data and building the index
    out = Path(args.out or Path("results") / benchmark.name.lower() / _slug(args.policy))
    env_kwargs: dict[str, Any] = {"data_path": args.data}
    if benchmark.has_search:
        env_kwargs["search"] = args.search
    env = make_env(benchmark.env_id, env_kwargs, split=args.split)
    policy = make_policy(
        args.policy,
        sampling=SamplingSettings(temperature=args.temperature, max_new_tokens=args.max_new_tokens),
        noise=args.noise,
        hf={"device": args.device, "prompt_format": args.prompt_format},
        openai={"model": args.model, "concurrency": args.concurrency},
    )
    episodes_path = out / "episodes.jsonl"
    judged_path = _judged_path(out, args) if judge is not None else None
    try:
        report = evaluate(
            env, policy, episodes_path, samples=args.samples, seed=args.seed,
            batch_size=args.batch_size, num_tasks=args.limit, judge=judge,
            judged_path=judged_path,
        )  # fmt: skip
    finally:
        close_policy(policy)
    summary = {
        "benchmark": benchmark.name,
        "metric": benchmark.metric,
        "args": asdict(args),
        "env": {"id": benchmark.env_id, **env_kwargs},
        "policy": args.policy + (f"#{args.model}" if args.policy.startswith("openai:") else ""),
        **{key: value for key, value in report.items() if key != "summary"},
        "mean_tokens_per_episode": report.get("mean_tokens_per_episode"),
        "wall_seconds": time.perf_counter() - started,
        "paper": {
            "model": PAPER_MODEL,
            "metric": "judge accuracy",
            "base": PAPER_TABLE2[benchmark.name][0],
            "swirl": PAPER_TABLE2[benchmark.name][1],
        },
        "files": {
            "episodes": str(judged_path or episodes_path),
            "summary": str(out / "summary.json"),
        },
    }
    write_json(out / "summary.json", summary)
    return summary


def format_table(summary: dict[str, Any]) -> str:
    """The Table 2 layout: the paper's rows, then ours, with our other metrics beside."""
    name, metric = summary["benchmark"], summary["metric"]
    paper = summary["paper"]

    def cell(value: float | None) -> str:
        return "–" if value is None else f"{value:.3f}"

    header = f"| | {name} (judge acc.) | {name} ({metric}) | F1 | steps | tool calls | episodes |"
    lines = [header, "|---|---:|---:|---:|---:|---:|---:|"]
    for label, value in (
        (f"paper base ({paper['model']})", paper["base"]),
        ("paper SWiRL", paper["swirl"]),
    ):
        lines.append(f"| {label} | {cell(value)} | – | – | – | – | – |")
    lines.append(
        f"| ours ({summary['policy']}) | {cell(summary['judge_accuracy'])} | "
        f"{cell(summary['accuracy'])} | {cell(summary['f1'])} | {summary['mean_steps']:.2f} | "
        f"{summary['mean_tool_calls']:.2f} | {summary['episodes']} |"
    )
    judge = summary["args"]["judge"]
    lines += [
        "",
        f"Paper rows: judge accuracy of {paper['model']} on the paper's own setup "
        "(Goldie et al., 2025, Table 2); not a like-for-like comparison.",
        f"Ours: {summary['episodes']} episodes on {summary['questions']} questions of "
        f"{summary['env']['data_path']}; judge: {judge}"
        + (f" ({summary['judge_unparseable']} unparseable verdicts)" if judge != "none" else ""),
    ]
    return "\n".join(lines)


def _judged_path(out: Path, args: BenchmarkArgs) -> Path:
    """One judged file per judge, so verdicts of different judges never mix."""
    judge = args.judge + (f"#{args.judge_model}" if args.judge.startswith("openai:") else "")
    return out / f"judged-{_slug(judge)}.jsonl"


def _slug(text: str) -> str:
    """A file-name-safe form of a policy spec (``hf:runs/x`` -> ``hf-runs-x``)."""
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in text).strip("-") or "policy"

"""Evaluate a policy on a real benchmark's files and set the result beside the paper's Table 2.

What ``benchmarks/gsm8k.py``, ``hotpotqa.py`` and ``musique.py`` share: each names a
``Benchmark`` (its env id and the paper's numbers) and calls ``main``. One run

1. rolls the policy out on the first ``limit`` questions of the file, ``samples``
   episodes each, into ``OUT/episodes.jsonl`` (a ``TrajectoryStore``: a rerun skips
   the episodes already there, so a killed run resumes);
2. with a judge, asks it the paper's outcome question for every episode and keeps
   the verdicts in ``OUT/judged-<judge>.jsonl`` (the same trajectories with
   ``meta["judgements"]``, also resumable) and ``OUT/judgements.sqlite`` (a cache);
3. writes ``OUT/summary.json`` (accuracy by EM or numeric equality, F1 for QA, judge
   accuracy, mean steps, tool calls and tokens, wall time) and prints a table laid
   out like Table 2 of Goldie et al. (2025), with the paper's numbers beside ours.

The paper's numbers are judge accuracy of Gemma-2-27B before and after SWiRL, on
the paper's own prompts, data subsets and judge; ours are comparable only when the
same kind of judge is given.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from swirl_agents.trajectory import Trajectory

PAPER_TABLE2: dict[str, tuple[float, float]] = {
    "GSM8K": (0.65, 0.79),
    "HotPotQA": (0.65, 0.73),
    "MuSiQue": (0.45, 0.50),
    "CofCA": (0.54, 0.62),
    "BeerQA": (0.59, 0.68),
}
"""Table 2 of Goldie et al. (2025): Gemma-2-27B judge accuracy, base and after SWiRL."""

PAPER_MODEL = "Gemma-2-27B"
JUDGE_SPECS = "none | programmatic | hf:PATH | openai:BASE_URL (with --judge-model)"
_JUDGE_CHUNK = 64  # episodes judged per store write: a killed run loses at most one chunk


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
    helps = _field_docstrings(BenchmarkArgs)
    for spec in fields(BenchmarkArgs):
        if spec.name == "search" and not benchmark.has_search:
            continue
        flag = "--" + spec.name.replace("_", "-")
        kind = {"int | None": int, "int": int, "float": float}.get(str(spec.type), str)
        required = spec.name == "data"
        parser.add_argument(
            flag, type=kind, default=spec.default, required=required, help=helps[spec.name]
        )
    return BenchmarkArgs(**vars(parser.parse_args(argv)))


def _field_docstrings(cls: type) -> dict[str, str]:
    """Each dataclass field's docstring (the string right under it), for ``--help``."""
    import ast
    import inspect
    import itertools

    body = ast.parse(inspect.getsource(cls)).body[0].body
    return {
        node.target.id: " ".join(following.value.value.split())
        for node, following in itertools.pairwise(body)
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
        if isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant)
    }


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
    import gymnasium as gym

    import swirl_envs  # noqa: F401 - registers the env ids
    from swirl_agents.rollout import rollout
    from swirl_agents.store import TrajectoryStore

    if not args.data:
        raise ValueError("give the dataset's file or folder with --data")
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be at least 1, got {args.limit}")
    if args.judge != "none":
        check_judge_spec(args.judge, args.judge_model)
    started = time.perf_counter()  # wall time includes loading the data and building the index
    out = Path(args.out or Path("results") / benchmark.name.lower() / _slug(args.policy))
    env_kwargs: dict[str, Any] = {"data_path": args.data}
    if args.split is not None:
        env_kwargs["split"] = args.split
    if benchmark.has_search:
        env_kwargs["search"] = args.search
    env = gym.make(benchmark.env_id, **env_kwargs)
    policy = _make_policy(args)
    keys = _episode_keys(env, args)
    episodes_path = out / "episodes.jsonl"
    stats = getattr(policy, "stats", None)
    tokens_before = (stats.prompt_tokens, stats.completion_tokens) if stats else (0, 0)
    try:
        with TrajectoryStore(episodes_path) as store:
            _check_resumable(episodes_path, store, policy, env)
            result = rollout(
                env,
                policy,
                samples=args.samples,
                batch_size=args.batch_size,
                seed=args.seed,
                num_tasks=args.limit,
                store=store,
                progress=False,
                keep=False,
            )
    finally:
        close = getattr(policy, "close", None)
        if callable(close):
            close()
    trajectories = _stored(episodes_path, keys)
    verdicts = _judge(args, env, out, trajectories) if args.judge != "none" else None
    tokens = None
    if stats is not None and result.summary.episodes:
        tokens = {
            "prompt": (stats.prompt_tokens - tokens_before[0]) / result.summary.episodes,
            "completion": (stats.completion_tokens - tokens_before[1]) / result.summary.episodes,
            "episodes_counted": result.summary.episodes,
        }
    summary = {
        "benchmark": benchmark.name,
        "metric": benchmark.metric,
        "args": asdict(args),
        "env": {"id": benchmark.env_id, **env_kwargs},
        "policy": args.policy + (f"#{args.model}" if args.policy.startswith("openai:") else ""),
        **score_episodes(trajectories, verdicts),
        "mean_tokens_per_episode": tokens,
        "episodes_run_now": result.summary.episodes,
        "episodes_resumed": result.summary.skipped,
        "wall_seconds": time.perf_counter() - started,
        "paper": {
            "model": PAPER_MODEL,
            "metric": "judge accuracy",
            "base": PAPER_TABLE2[benchmark.name][0],
            "swirl": PAPER_TABLE2[benchmark.name][1],
        },
        "files": {
            "episodes": str(_judged_path(out, args) if verdicts is not None else episodes_path),
            "summary": str(out / "summary.json"),
        },
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def score_episodes(
    trajectories: Sequence[Trajectory], verdicts: Sequence[bool | None] | None = None
) -> dict[str, Any]:
    """Accuracy and effort over episodes; an episode that never answered scores 0.

    Args:
        trajectories: The evaluated episodes.
        verdicts: The outcome judge's verdict per episode (None: unparseable, counted
            as wrong and reported); omit when no judge ran.
    """
    count = len(trajectories)
    if not count:
        raise ValueError("no episodes to score (is the data file empty?)")

    def mean(values: Sequence[float]) -> float:
        return sum(values) / count

    scores: dict[str, Any] = {
        "episodes": count,
        "questions": len({t.task_id for t in trajectories}),
        "accuracy": mean([t.score for t in trajectories]),
        "f1": None,
        "judge_accuracy": None,
        "judge_unparseable": None,
        "answered": mean([float(t.terminated) for t in trajectories]),
        "mean_steps": mean([len(t.steps) for t in trajectories]),
        "mean_tool_calls": mean([sum(s.tool is not None for s in t.steps) for t in trajectories]),
    }
    if any("f1" in t.metrics for t in trajectories):
        scores["f1"] = mean([t.metrics.get("f1", 0.0) for t in trajectories])
    if verdicts is not None:
        scores["judge_accuracy"] = mean([float(v is True) for v in verdicts])
        scores["judge_unparseable"] = sum(v is None for v in verdicts)
    return scores


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


def make_outcome_judge(spec: str, env: Any, args: BenchmarkArgs) -> Any:
    """The outcome judge named by ``spec``, with the paper's outcome prompt for ``env``.

    Raises:
        ValueError: ``spec`` names no judge, or an ``openai:`` judge has no model name.
    """
    from swirl_agents.judges import make_judge

    return make_judge(
        spec,
        env,
        programmatic={"process_rule": None},
        hf={"device": args.device},
        openai={"model": args.judge_model, "concurrency": args.concurrency},
    )


def check_judge_spec(spec: str, judge_model: str | None) -> tuple[str, str]:
    """``(backend, target)`` of a judge spec; checked before the rollout, not after it.

    Raises:
        ValueError: ``spec`` names no judge, or an ``openai:`` judge has no model name.
    """
    backend, _, target = spec.partition(":")
    if spec == "programmatic":
        return backend, ""
    if backend not in ("hf", "openai") or not target:
        raise ValueError(f"unknown judge {spec!r}; expected one of: {JUDGE_SPECS}")
    if backend == "openai" and not judge_model:
        raise ValueError("an openai: judge needs --judge-model")
    return backend, target


def _make_policy(args: BenchmarkArgs) -> Any:
    from swirl_agents.policies import SamplingSettings, make_policy

    return make_policy(
        args.policy,
        sampling=SamplingSettings(temperature=args.temperature, max_new_tokens=args.max_new_tokens),
        noise=args.noise,
        hf={"device": args.device, "prompt_format": args.prompt_format},
        openai={"model": args.model, "concurrency": args.concurrency},
    )


def _episode_keys(env: Any, args: BenchmarkArgs) -> list[tuple[str, int]]:
    """The ``(task_id, sample)`` pairs this run evaluates, in task order."""
    tasks = env.unwrapped.tasks[: args.limit]
    return [(task.id, sample) for task in tasks for sample in range(args.samples)]


def _check_resumable(path: Path, store: Any, policy: Any, env: Any) -> None:
    """Refuse to add episodes to a store that holds another policy's or env settings' episodes."""
    from swirl_agents.policies import describe_policy
    from swirl_agents.store import load_trajectories

    if not len(store):
        return
    first = next(load_trajectories(path))
    ours = {"policy": describe_policy(policy), "env settings": dict(env.spec.kwargs)}
    for what, value in ours.items():
        stored = first.policy if what == "policy" else first.env_kwargs
        if stored != json.loads(json.dumps(value)):
            raise ValueError(
                f"{path} holds episodes of {what} {stored}, not {value}; rerun with the same "
                "arguments to resume, or give another --out"
            )


def _stored(path: Path, keys: Sequence[tuple[str, int]]) -> list[Trajectory]:
    """The stored episodes of ``keys``, in that order (a store may hold more)."""
    from swirl_agents.store import load_trajectories

    by_key = {t.key: t for t in load_trajectories(path)}
    return [by_key[key] for key in keys]


def _judge(
    args: BenchmarkArgs, env: Any, out: Path, trajectories: list[Trajectory]
) -> list[bool | None]:
    """Judge every episode's answer once (resumably); return the verdicts in episode order."""
    from swirl_agents.judges import JudgedTrajectory, JudgementCache, judge_trajectories
    from swirl_agents.store import TrajectoryStore, load_trajectories

    judged_path = _judged_path(out, args)
    with TrajectoryStore(judged_path) as store:
        todo = [t for t in trajectories if t.key not in store]
        if todo:
            judge = make_outcome_judge(args.judge, env, args)
            cache = JudgementCache(out / "judgements.sqlite")
            try:
                for start in range(0, len(todo), _JUDGE_CHUNK):
                    chunk = todo[start : start + _JUDGE_CHUNK]
                    items = judge_trajectories(chunk, outcome_judge=judge, cache=cache)
                    store.append(item.to_trajectory() for item in items)
            finally:
                cache.close()
                close = getattr(judge, "close", None)
                if callable(close):
                    close()
    verdicts = {}
    for stored in load_trajectories(judged_path):
        outcome = JudgedTrajectory.from_trajectory(stored).outcome
        verdicts[stored.key] = None if outcome is None else outcome.good
    return [verdicts[t.key] for t in trajectories]


def _judged_path(out: Path, args: BenchmarkArgs) -> Path:
    """One judged file per judge, so verdicts of different judges never mix."""
    judge = args.judge + (f"#{args.judge_model}" if args.judge.startswith("openai:") else "")
    return out / f"judged-{_slug(judge)}.jsonl"


def _slug(text: str) -> str:
    """A file-name-safe form of a policy spec (``hf:runs/x`` -> ``hf-runs-x``)."""
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in text).strip("-") or "policy"

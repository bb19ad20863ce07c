r"""Retrieval recall of the supporting paragraphs, and gold-path replay, on the real benchmarks.

For every dataset given, in the distractor setting (each question's own paragraphs)
and the open setting (every paragraph of the loaded file in one index):

- gold queries: recall@k of the passage each gold-path search is for, using the
  gold path's own query (what an agent that searches like the gold path gets);
- question: recall@k of the supporting passages when the raw question is the query.

It also replays every gold path through the env (distractor setting) and reports
its mean reward, which must be 1.0, and for GSM8K the share of tasks whose
annotated calculator steps reproduce through the calculator.

Usage::

    python benchmarks/retrieval_recall.py \
        --gsm8k ../shared/data/gsm8k/train.jsonl \
        --hotpotqa ../shared/data/hotpotqa/hotpot_train_sample_100.json \
        --musique ../shared/data/musique/musique_ans_train_sample_100.jsonl

Prints two tables and writes JSON (default ``results/retrieval_recall.json``).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from swirl_agents.flags import add_flags, from_flags
from swirl_envs.actions import ToolCall, parse_action
from swirl_envs.env import SwirlEnv
from swirl_envs.tasks.base import Passage, Task
from swirl_envs.tasks.beerqa import BeerQAEnv
from swirl_envs.tasks.cofca import CofCAEnv
from swirl_envs.tasks.gsm8k import GSM8KEnv
from swirl_envs.tasks.hotpotqa import HotPotQAEnv
from swirl_envs.tasks.musique import MuSiQueEnv
from swirl_envs.tasks.search_env import SearchQAEnv, supporting_passages
from swirl_envs.tools.search import SearchTool

QA_ENVS: dict[str, type[SearchQAEnv]] = {
    "hotpotqa": HotPotQAEnv,
    "musique": MuSiQueEnv,
    "beerqa": BeerQAEnv,
    "cofca": CofCAEnv,
}
SETTINGS = ("distractor", "open")


@dataclass
class Args:
    """Arguments of the benchmark (each dataset path is optional; given ones are measured)."""

    gsm8k: str | None = None
    """GSM8K JSONL file (gold-path replay only: GSM8K has no retrieval)."""
    hotpotqa: str | None = None
    """HotPotQA JSON/JSONL file."""
    musique: str | None = None
    """MuSiQue JSONL file (Answerable or Full)."""
    beerqa: str | None = None
    """BeerQA v1.0 JSON file."""
    cofca: str | None = None
    """CofCA JSON/JSONL file."""
    ks: list[int] = field(default_factory=lambda: [1, 2, 5])
    """The k of recall@k."""
    out: str = "results/retrieval_recall.json"
    """Where to write the JSON results."""


def keyed(passage: Passage) -> tuple[str, str]:
    """A passage's identity in any index (the open index keeps one copy of a repeated paragraph)."""
    return passage.title, passage.text


def gold_queries(task: Task, tool: SearchTool) -> list[tuple[str, Passage]]:
    """Each gold-path search query with the passage it is for."""
    by_id = {passage.id: passage for passage in task.passages}
    queries = [
        action.argument
        for action in (parse_action(text, [tool]) for text in task.gold_path)
        if isinstance(action, ToolCall)
    ]
    return list(zip(queries, (by_id[i] for i in task.meta["gold_targets"]), strict=True))


def ranked(tool: SearchTool, query: str, task: Task) -> list[Passage]:
    """The passages ``tool`` shows for ``query`` on ``task``, best first."""
    return [hit.passage for hit in tool.rank(query, task)]


def recall(
    tool: SearchTool, tasks: Sequence[Task], ks: Sequence[int], *, use_question: bool
) -> dict[str, Any]:
    """Recall@k over (query, target passage) pairs, for gold queries or for the question.

    ``tool`` returns ``max(ks)`` passages; the top k of a ranking is its prefix.
    """
    hits = dict.fromkeys(ks, 0)
    pairs = 0
    for task in tasks:
        if use_question:
            ranking = ranked(tool, task.question, task)
            targets = [(ranking, passage) for passage in supporting_passages(task)]
        else:
            targets = [
                (ranked(tool, query, task), passage) for query, passage in gold_queries(task, tool)
            ]
        for ranking, passage in targets:
            pairs += 1
            rank = next(
                (i for i, p in enumerate(ranking) if keyed(p) == keyed(passage)), len(ranking)
            )
            for k in ks:
                hits[k] += rank < k
    return {"pairs": pairs, **{f"recall@{k}": hits[k] / pairs if pairs else 0.0 for k in ks}}


def replay(env: SwirlEnv) -> float:
    """Mean reward of every task's gold path played through ``env``."""
    total = 0.0
    for index, task in enumerate(env.tasks):
        env.reset(options={"index": index})
        reward = 0.0
        for action in task.gold_path:
            _, reward, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                break
        total += reward
    return total / len(env.tasks)


def measure_qa(name: str, path: str, ks: Sequence[int]) -> dict[str, Any]:
    """Recall rows and the replay score of one QA dataset."""
    rows = []
    envs = {}
    for setting in SETTINGS:
        # A file path is read whatever the split; the split only names default files.
        envs[setting] = QA_ENVS[name](path, search=setting, k=max(ks))
        tool = envs[setting].tools[0]
        assert isinstance(tool, SearchTool)
        for queries in ("gold", "question"):
            scores = recall(tool, envs[setting].tasks, ks, use_question=queries == "question")
            rows.append({"dataset": name, "setting": setting, "queries": queries, **scores})
    tasks = envs["distractor"].tasks
    return {
        "recall": rows,
        "replay": {
            "dataset": name,
            "tasks": len(tasks),
            "gold_queries_top1": sum(t.meta["gold_queries_top1"] for t in tasks) / len(tasks),
            "replay_reward": replay(envs["distractor"]),
        },
    }


def measure_gsm8k(path: str) -> dict[str, Any]:
    """Gold-path replay of GSM8K: calculator-checked paths and the replay reward."""
    env = GSM8KEnv(path)
    answer_only = sum("gold_path_issue" in task.meta for task in env.tasks)
    no_steps = sum(len(task.gold_path) == 1 for task in env.tasks)
    return {
        "dataset": "gsm8k",
        "tasks": len(env.tasks),
        "calculator_checked": (len(env.tasks) - answer_only) / len(env.tasks),
        "without_annotations": no_steps - answer_only,
        "replay_reward": replay(env),
    }


def run(args: Args) -> dict[str, Any]:
    """Measure every dataset given in ``args``."""
    results: dict[str, Any] = {"args": asdict(args), "recall": [], "replay": []}
    if args.gsm8k:
        results["replay"].append(measure_gsm8k(args.gsm8k))
    for name in QA_ENVS:
        path = getattr(args, name)
        if path:
            measured = measure_qa(name, path, args.ks)
            results["recall"] += measured["recall"]
            results["replay"].append(measured["replay"])
    return results


def format_tables(results: dict[str, Any]) -> str:
    """The recall and replay tables as Markdown."""
    ks = results["args"]["ks"]
    lines = [
        "| dataset | setting | queries | pairs | " + " | ".join(f"R@{k}" for k in ks) + " |",
        "|---|---|---|---:|" + "---:|" * len(ks),
    ]
    for row in results["recall"]:
        cells = " | ".join(f"{row[f'recall@{k}']:.3f}" for k in ks)
        lines.append(
            f"| {row['dataset']} | {row['setting']} | {row['queries']} | {row['pairs']} | {cells} |"
        )
    lines += [
        "",
        "| dataset | tasks | checked gold paths | replay reward |",
        "|---|---:|---:|---:|",
    ]
    for row in results["replay"]:
        checked = row.get("calculator_checked", row.get("gold_queries_top1"))
        lines.append(
            f"| {row['dataset']} | {row['tasks']} | {checked:.4f} | {row['replay_reward']:.4f} |"
        )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> Args:
    """Read ``Args`` from the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_flags(parser, Args)
    return from_flags(Args, parser.parse_args(argv))


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print the tables, write the JSON."""
    args = parse_args(argv)
    if not any(getattr(args, name) for name in ("gsm8k", *QA_ENVS)):
        raise SystemExit("Give at least one dataset path (--gsm8k, --hotpotqa, --musique, ...).")
    results = run(args)
    print(format_tables(results))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"\nWrote {out}")
    return results


if __name__ == "__main__":
    main()

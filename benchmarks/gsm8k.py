"""GSM8K accuracy of a policy beside the paper's Table 2 (Gemma-2-27B judge accuracy .65 -> .79).

Usage::

    python benchmarks/gsm8k.py --data data/gsm8k/test.jsonl --policy hf:runs/swirl/final \\
        --judge openai:http://127.0.0.1:8001/v1 --judge-model JUDGE --out results/gsm8k/swirl
    python benchmarks/gsm8k.py --data ../shared/data/gsm8k/train.jsonl --split train \\
        --policy noisy-oracle --limit 200

Writes ``OUT/episodes.jsonl`` (one trajectory per question and sample; a rerun
resumes), ``OUT/judged-<judge>.jsonl`` with a judge, and ``OUT/summary.json``
(default OUT: ``results/gsm8k/<policy>``); see ``swirl_agents.benchmark``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from swirl_agents.benchmark import Benchmark, main

GSM8K = Benchmark(name="GSM8K", env_id="swirl/GSM8K-v0", metric="numeric", has_search=False)


def run(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Evaluate on GSM8K from command-line arguments; return the summary."""
    return main(GSM8K, argv)


if __name__ == "__main__":
    run()

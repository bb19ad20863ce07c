"""HotPotQA accuracy of a policy beside the paper's Table 2 (Gemma-2-27B judge accuracy .65 -> .73).

Usage::

    python benchmarks/hotpotqa.py --data data/hotpotqa/hotpot_dev_distractor_v1.json \\
        --policy openai:http://127.0.0.1:8000/v1 --model MODEL \\
        --judge openai:http://127.0.0.1:8001/v1 --judge-model JUDGE --search open
    python benchmarks/hotpotqa.py --data ../shared/data/hotpotqa/hotpot_train_sample_100.json \\
        --split train --policy noisy-oracle

``--search``: ``distractor`` (each question's own paragraphs), ``open`` (every
paragraph of the file in one index) or a corpus path. Writes ``OUT/episodes.jsonl``
(resumable), ``OUT/judged-<judge>.jsonl`` with a judge, and ``OUT/summary.json``
(default OUT: ``results/hotpotqa/<policy>``); see ``swirl_agents.benchmark``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from swirl_agents.benchmark import Benchmark, main

HOTPOTQA = Benchmark(name="HotPotQA", env_id="swirl/HotPotQA-v0", metric="EM", has_search=True)


def run(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Evaluate on HotPotQA from command-line arguments; return the summary."""
    return main(HOTPOTQA, argv)


if __name__ == "__main__":
    run()

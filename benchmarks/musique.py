"""MuSiQue accuracy of a policy beside the paper's Table 2 (Gemma-2-27B judge accuracy .45 -> .50).

Usage::

    python benchmarks/musique.py --data data/musique/musique_ans_v1.0_dev.jsonl \\
        --policy hf:runs/swirl/final --judge hf:models/judge --search open
    python benchmarks/musique.py --data ../shared/data/musique/musique_ans_train_sample_100.jsonl \\
        --split train --policy noisy-oracle

``--search``: ``distractor`` (each question's own paragraphs), ``open`` (every
paragraph of the file in one index) or a corpus path. Writes ``OUT/episodes.jsonl``
(resumable), ``OUT/judged-<judge>.jsonl`` with a judge, and ``OUT/summary.json``
(default OUT: ``results/musique/<policy>``); see ``swirl_agents.benchmark``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from swirl_agents.benchmark import Benchmark, main

MUSIQUE = Benchmark(name="MuSiQue", env_id="swirl/MuSiQue-v0", metric="EM", has_search=True)


def run(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Evaluate on MuSiQue from command-line arguments; return the summary."""
    return main(MUSIQUE, argv)


if __name__ == "__main__":
    run()

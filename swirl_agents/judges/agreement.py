"""How far a judge agrees with a trusted one: false positive and false negative rates.

As in the SWiRL paper's Appendix D, the positive class is "judged good" (GOOD for a
step, YES for an answer), and the judge under test is compared with a truth judge
(here a programmatic one) on the same queries:

- FPR = FP / (FP + TN): of the items the truth calls bad, the share the judge calls
  good. These are the bad steps a process filter would let into the training data.
- FNR = FN / (FN + TP): of the items the truth calls good, the share the judge calls
  bad, i.e. good data thrown away.
- accuracy = (TP + TN) / judged, over the items where both verdicts parse.

An unparseable verdict of the judge is neither positive nor negative: it is counted
in ``unparseable`` and left out of the rates (a filter drops such items anyway).
Items the truth itself cannot decide are counted in ``truth_unparseable`` and left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from swirl_agents.judges.base import Judge, Judgement, OutcomeQuery, ProcessQuery


def confusion(judged: Sequence[Judgement], truth: Sequence[Judgement]) -> dict[str, Any]:
    """Counts and rates of ``judged`` against ``truth``, item by item (see the module docstring)."""
    if len(judged) != len(truth):
        raise ValueError(f"{len(judged)} judgements against {len(truth)} truths")
    counts = {"tp": 0, "fp": 0, "tn": 0, "fn": 0, "unparseable": 0, "truth_unparseable": 0}
    for verdict, true in zip(judged, truth, strict=True):
        if true.good is None:
            counts["truth_unparseable"] += 1
        elif verdict.good is None:
            counts["unparseable"] += 1
        else:
            outcome = ("t" if verdict.good == true.good else "f") + ("p" if verdict.good else "n")
            counts[outcome] += 1
    tp, fp, tn, fn = counts["tp"], counts["fp"], counts["tn"], counts["fn"]
    judged_count = tp + fp + tn + fn
    return {
        "n": len(judged),
        "judged": judged_count,
        **counts,
        "fpr": _ratio(fp, fp + tn),
        "fnr": _ratio(fn, fn + tp),
        "accuracy": _ratio(tp + tn, judged_count),
        "truth_positive_rate": _ratio(tp + fn, judged_count),
    }


def judge_agreement(
    judge: Judge,
    truth: Judge,
    process_queries: Sequence[ProcessQuery] = (),
    outcome_queries: Sequence[OutcomeQuery] = (),
) -> dict[str, dict[str, Any]]:
    """Judge the queries with both judges and report FPR, FNR and accuracy per kind.

    Args:
        judge: The judge under test (a model, an endpoint).
        truth: The reference, e.g. a ``ProgrammaticJudge`` on generated tasks.
        process_queries: Steps to judge; the ``"process"`` entry is omitted when empty.
        outcome_queries: Final answers to judge; the ``"outcome"`` entry likewise.

    Returns:
        ``{"process": {...}, "outcome": {...}}``, each with ``n``, ``judged``, ``tp``,
        ``fp``, ``tn``, ``fn``, ``unparseable``, ``truth_unparseable``, ``fpr``, ``fnr``,
        ``accuracy`` and ``truth_positive_rate`` (rates are None when undefined).
    """
    report: dict[str, dict[str, Any]] = {}
    if process_queries:
        report["process"] = confusion(
            judge.judge_process(process_queries), truth.judge_process(process_queries)
        )
    if outcome_queries:
        report["outcome"] = confusion(
            judge.judge_outcome(outcome_queries), truth.judge_outcome(outcome_queries)
        )
    return report


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None

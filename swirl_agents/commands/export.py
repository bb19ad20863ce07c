"""``swirl export``: trajectories to a Hugging Face dataset in TRL's conversational format.

::

    swirl export --in runs/filtered.jsonl --out runs/filtered-ds       # one row per trajectory
    swirl export --in runs/judged.jsonl --out runs/steps-ds --rows step   # one row per step
    swirl export --in runs/filtered.jsonl --out runs/ds --push-to-hub me/swirl-math

``--rows trajectory`` writes ``messages`` (TRL's conversational language-modeling rows);
``--rows step`` writes ``prompt`` (the state s_k) and ``completion`` (the action a_k), TRL's
conversational prompt-completion rows. Both carry the judgements as columns and every field
of the trajectory record, so ``swirl import`` rebuilds the file exactly. The folder is read
by ``datasets.load_from_disk``; ``--push-to-hub`` also pushes the dataset (online, with a
hub token). Schema: docs/training.md.
"""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``swirl export``."""
    from swirl_agents.stages.export import ROW_KINDS

    parser = subparsers.add_parser(
        "export",
        help="trajectories to a Hugging Face dataset (TRL's conversational format)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--in", dest="input", required=True, help="trajectories (JSONL)")
    parser.add_argument("--out", help="dataset folder (save_to_disk; a saved dataset is replaced)")
    parser.add_argument(
        "--rows", choices=ROW_KINDS, default="trajectory", help="one row per trajectory or step"
    )
    parser.add_argument("--push-to-hub", metavar="REPO", help="also push to this hub repository")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Export ``--in`` to ``--out`` and/or the hub; print one line."""
    from swirl_agents.stages import export_dataset

    if not (args.out or args.push_to_hub):
        raise ValueError("give --out, --push-to-hub or both")
    summary = export_dataset(args.input, args.out, rows=args.rows, push_to_hub=args.push_to_hub)
    print(summary["summary"])
    return 0

"""``swirl import``: a dataset written by ``swirl export`` back to a trajectory file.

::

    swirl import --in runs/filtered-ds --out runs/filtered.jsonl

Either row kind imports (step rows are regrouped into their trajectories), and the records
equal the exported ones, so the file trains, judges and filters like the original. The
output is written whole and renamed into place: it is complete or absent. A dataset on a
hub: ``datasets.load_dataset(REPO, split="train").save_to_disk(DIR)`` first, or call
``swirl_agents.stages.import_dataset`` on it.

(The module is ``import_`` because ``import`` is a Python keyword; the command is ``import``.)
"""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``swirl import``."""
    parser = subparsers.add_parser(
        "import",
        help="a dataset from `swirl export` back to trajectories (JSONL)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--in", dest="input", required=True, help="dataset folder")
    parser.add_argument("--out", required=True, help="trajectories (JSONL, replaced)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Import ``--in`` into ``--out`` and print one line."""
    from swirl_agents.stages import import_file

    print(import_file(args.input, args.out)["summary"])
    return 0

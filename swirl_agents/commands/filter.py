"""``swirl filter``: keep the judged trajectories that pass a SWiRL filter.

::

    swirl filter --in runs/judged.jsonl --out runs/filtered.jsonl --mode process

Prints one line with the trajectories and steps kept. The output is written to a
temporary file and renamed into place, so it is either complete or absent.
"""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``swirl filter``."""
    from swirl_agents.filters import FILTER_MODES

    parser = subparsers.add_parser(
        "filter",
        help="keep judged trajectories by process and/or outcome judgements",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--in", dest="input", required=True, help="judged trajectories (JSONL)")
    parser.add_argument("--out", required=True, help="kept trajectories (JSONL, replaced)")
    parser.add_argument("--mode", choices=FILTER_MODES, default="process", help="the filter")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Filter ``--in`` into ``--out`` and print the counts."""
    from swirl_agents.stages import filter_file

    print(filter_file(args.input, args.out, args.mode)["summary"])
    return 0

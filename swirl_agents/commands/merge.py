"""``swirl merge``: join the outputs of a ``swirl generate`` or ``swirl judge`` run in N shards.

::

    swirl merge --in runs/samples.*.jsonl --out runs/samples.jsonl

Each shard file must come with its ``FILE.shard.json`` record (written by ``--shard``).
The merge refuses, naming the file, a shard that is missing, incomplete (killed
mid-run: rerun its command to finish it), overlapping (two files for one shard) or of
another run (another shard count, policy or settings). The output is sorted by
``(task_id, sample)`` and written whole, then renamed into place: complete or absent.
"""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``swirl merge``."""
    parser = subparsers.add_parser(
        "merge",
        help="join the shards of a sharded generate or judge run into one file",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--in", dest="inputs", nargs="+", required=True, help="every shard's output file"
    )
    parser.add_argument("--out", required=True, help="the merged trajectories (JSONL, replaced)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Merge ``--in`` into ``--out`` and print one line."""
    from swirl_agents.stages import merge_shards

    print(f"{merge_shards(args.inputs, args.out)['summary']} -> {args.out}")
    return 0

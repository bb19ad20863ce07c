"""The ``swirl`` command: one subcommand per pipeline stage.

Each subcommand lives in ``swirl_agents.commands.<name>`` with ``add_parser(subparsers)``
and ``run(args) -> int``. Heavy imports (torch, transformers) happen inside ``run`` so
that ``swirl --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

COMMANDS = ("envs", "generate", "judge", "filter", "train", "eval", "demo", "serve")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="swirl", description="Step-wise RL for multi-step reasoning and tool use."
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"swirl_agents.commands.{name}")
        module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``swirl`` console script."""
    args = build_parser().parse_args(argv)
    return int(args.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())

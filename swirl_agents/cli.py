"""The ``swirl`` command: one subcommand per pipeline stage.

Each subcommand lives in ``swirl_agents.commands.<name>`` with ``add_parser(subparsers)``
and ``run(args) -> int``: it parses arguments and calls one function of the stage
layer (``swirl_agents.stages``). Heavy imports (torch, transformers) happen inside
``run`` so that ``swirl --help`` stays fast.

A user error (a missing or corrupt file, an unknown env id, a bad setting) ends in
one line on stderr, ``swirl COMMAND: what went wrong``, and exit status 2, never a
traceback; ``SWIRL_TRACEBACK=1`` shows the traceback too.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

COMMANDS = (
    "envs", "generate", "judge", "merge", "filter", "export", "import_", "train", "eval", "demo",
    "serve",
)  # fmt: skip
"""The subcommands' modules; ``import_`` registers ``swirl import`` (``import`` is a keyword)."""


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
    return run_command(args.command, args)


def run_command(name: str, args: argparse.Namespace) -> int:
    """Run a parsed subcommand; a user error becomes one line on stderr and exit status 2."""
    try:
        return int(args.run(args) or 0)
    except (ValueError, OSError) as error:  # StageError, ConfigError, data errors: user errors
        if os.environ.get("SWIRL_TRACEBACK"):
            raise
        from swirl_agents.stages.errors import one_line

        print(f"swirl {name}: {one_line(error)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

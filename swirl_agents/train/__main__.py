"""``python -m swirl_agents.train``: the ``swirl train`` command (and ``torchrun -m``'s target)."""

from __future__ import annotations

import argparse
import sys

from swirl_agents.cli import run_command
from swirl_agents.commands import train


def main(argv: list[str] | None = None) -> int:
    """Parse ``swirl train`` flags and run it."""
    parser = argparse.ArgumentParser(
        prog="python -m swirl_agents.train",
        description=train.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train.configure(parser)
    args = parser.parse_args(argv)
    return run_command("train", args)


if __name__ == "__main__":
    sys.exit(main())

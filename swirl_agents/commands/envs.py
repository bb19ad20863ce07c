"""``swirl envs``: list the registered environments and their tools."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``swirl envs``."""
    parser = subparsers.add_parser("envs", help="list the registered swirl environments")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Print each registered id with its entry point."""
    import swirl_envs

    for env_id, entry_point in swirl_envs.ENV_IDS.items():
        print(f"{env_id:24s} {entry_point}")
    return 0

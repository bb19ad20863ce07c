"""``swirl demo``: the whole SWiRL pipeline on a CPU, from a random-init tiny model to a report.

::

    swirl demo                       # one seed, SynthMath and SynthHop, under runs/demo
    swirl demo --seeds 3             # three seeds (0, 1, 2): mean and spread in the table
    swirl demo --seed 4 7            # exactly these seeds
    swirl demo --config my.yaml --set train.lr=1e-4 --set judge.filter=outcome

Embedded defaults (``swirl_agents/configs/demo.yaml``), no downloads. Rerunning the
same command skips finished stages and resumes a killed one.
"""

from __future__ import annotations

import argparse

from swirl_agents.config import add_run_config_flags, load_config, run_config_overrides


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``swirl demo``."""
    parser = subparsers.add_parser(
        "demo",
        help="run the CPU demo: tiny base model, SWiRL, controls, evaluation, report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_run_config_flags(parser)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke test")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Load the config and run every stage (the report is written at the end)."""
    from swirl_agents.demo import run_demo

    run_demo(load_config(args.config, run_config_overrides(args)))
    return 0

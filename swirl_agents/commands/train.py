"""``swirl train``: train a policy on (filtered) trajectories with SWiRL or the SFT baseline.

::

    swirl train --data runs/filtered.jsonl --model runs/tiny --out runs/swirl \\
        --objective swirl-offline --steps 200 --lr 5e-4 --batch-size 16
    torchrun --nproc_per_node 4 -m swirl_agents.train --data ... --model ... --out ...

Every flag is a ``TrainConfig`` field (``--out`` is short for ``--out-dir``); the
field's docstring is its help. ``python -m swirl_agents.train`` is the same command.
The online objective needs a process judge: ``--judge programmatic`` (checks each
sampled step against the task, built from the trajectories' env) or ``--judge
hf:PATH`` (a local judge model).
"""

from __future__ import annotations

import argparse
import json

from swirl_agents.flags import add_flags, from_flags
from swirl_agents.train.config import TrainConfig

JUDGE_CHOICES = "programmatic | hf:PATH"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``swirl train``."""
    parser = subparsers.add_parser(
        "train",
        help="train a policy with step-wise RL (SWiRL) or the SFT baseline",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    configure(parser)


def configure(parser: argparse.ArgumentParser) -> None:
    """Add one flag per ``TrainConfig`` field, plus ``--judge``, to ``parser``."""
    add_flags(parser, TrainConfig, aliases={"out_dir": ["--out"]})
    parser.add_argument("--judge", help=f"process judge for swirl-online: {JUDGE_CHOICES}")
    parser.set_defaults(run=run)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The ``TrainConfig`` the parsed flags describe (a ``ValueError`` names a bad setting)."""
    return from_flags(TrainConfig, args)


def run(args: argparse.Namespace) -> int:
    """Train (resuming with ``--resume``) and print the last step's metrics."""
    from swirl_agents.stages import train
    from swirl_agents.train.distributed import close_distributed

    config = config_from_args(args)
    if not config.data or not config.model:
        raise ValueError("--data and --model are required")
    if config.objective == "swirl-online" and not args.judge:
        raise ValueError(f"--objective swirl-online needs --judge {JUDGE_CHOICES}")
    summary = None
    try:
        summary = train(config, judge=args.judge)
        if summary["is_main"]:
            print(json.dumps(summary["metrics"]))
            print(f"model written to {summary['model']}")
    finally:  # after a failure, leave at once: torchrun stops the other processes
        close_distributed(synchronize=summary is not None)
    return 0

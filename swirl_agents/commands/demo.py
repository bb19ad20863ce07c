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

QUICK = (
    "families.0.train_tasks=200", "families.1.train_tasks=200",
    "families.0.test_tasks=40", "families.1.test_tasks=40",
    "warmup.steps=20", "train.steps=10", "train.save_every=5",
    "model.hidden_size=32", "model.intermediate_size=64", "model.vocab_size=400",
    "generate.max_new_tokens=24", "eval.max_new_tokens=24",
)  # fmt: skip
"""``--quick``: a run of a few minutes that exercises every stage (it does not learn much)."""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``swirl demo``."""
    parser = subparsers.add_parser(
        "demo",
        help="run the CPU demo: tiny base model, SWiRL, controls, evaluation, report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_flags(parser)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke test")
    parser.set_defaults(run=run)


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """Flags shared by the config-driven commands; each one overrides a config key."""
    parser.add_argument("--config", help="YAML run config (default: the embedded demo config)")
    parser.add_argument("--out", help="output folder (key out_dir)")
    seeds = parser.add_mutually_exclusive_group()
    seeds.add_argument(
        "--seeds", type=int, metavar="N", help="run N seeds: 0, 1, ..., N-1 (key seeds)"
    )
    seeds.add_argument("--seed", type=int, nargs="+", metavar="S", help="run these seeds")
    parser.add_argument("--threads", type=int, help="torch CPU threads (key threads)")
    parser.add_argument("--device", help="cpu or cuda (key device)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="override any config key, e.g. --set train.lr=1e-4 --set families.0.train_tasks=500",
    )  # fmt: skip


def config_overrides(args: argparse.Namespace) -> list[str]:
    """The ``KEY=VALUE`` overrides the named flags and ``--set`` describe, flags first."""
    overrides = list(QUICK) if getattr(args, "quick", False) else []
    if args.seeds is not None:
        if args.seeds < 1:
            raise ValueError(f"--seeds takes a number of seeds (1 or more), got {args.seeds}")
        overrides.append(f"seeds={list(range(args.seeds))}")
    if args.seed is not None:
        overrides.append(f"seeds={args.seed}")
    for flag, key in (("out", "out_dir"), ("threads", "threads"), ("device", "device")):
        value = getattr(args, flag)
        if value is not None:
            overrides.append(f"{key}={value}")
    return overrides + list(args.set)


def run(args: argparse.Namespace) -> int:
    """Load the config, run every stage, print the table; 2 on a config error."""
    from swirl_agents.config import load_config

    try:
        config = load_config(args.config, config_overrides(args))
    except (ValueError, OSError) as error:  # ConfigError is a ValueError
        print(f"swirl demo: {error}")
        return 2
    from swirl_agents.demo import run_demo

    run_demo(config)
    return 0

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
import dataclasses
import json
from typing import Any

from swirl_agents.train.config import TrainConfig, field_docs

JUDGE_CHOICES = "programmatic | hf:PATH"
_ALIASES = {"out_dir": ["--out"]}


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
    docs = field_docs(TrainConfig)
    defaults = TrainConfig()
    for item in dataclasses.fields(TrainConfig):
        default = getattr(defaults, item.name)
        flags = ["--" + item.name.replace("_", "-"), *_ALIASES.get(item.name, [])]
        help_text = f"{docs.get(item.name, '')} (default: {default})".replace("%", "%%")
        parser.add_argument(*flags, dest=item.name, help=help_text, **_argument_kind(item, default))
    parser.add_argument("--judge", help=f"process judge for swirl-online: {JUDGE_CHOICES}")
    parser.set_defaults(run=run)


def _argument_kind(item: dataclasses.Field, default: Any) -> dict[str, Any]:
    annotation = str(item.type)
    if annotation == "bool":
        return {"action": argparse.BooleanOptionalAction, "default": default}
    if annotation.startswith("tuple["):
        element = float if "float" in annotation else str
        return {"nargs": "+", "type": element, "default": default}
    element = {"int": int, "float": float}.get(annotation.split(" |")[0], str)
    return {"type": element, "default": default}


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The ``TrainConfig`` the parsed flags describe."""
    names = [item.name for item in dataclasses.fields(TrainConfig)]
    try:
        return TrainConfig.from_dict({name: getattr(args, name) for name in names})
    except ValueError as error:
        raise SystemExit(f"swirl train: {error}") from None


def run(args: argparse.Namespace) -> int:
    """Load the data, the model and (online) the judge, train, and print the last metrics."""
    config = config_from_args(args)
    if not config.data or not config.model:
        raise SystemExit("swirl train: --data and --model are required")
    if config.objective == "swirl-online" and not args.judge:
        raise SystemExit(f"swirl train: --objective swirl-online needs --judge {JUDGE_CHOICES}")

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from swirl_agents.store import load_trajectories
    from swirl_agents.train.distributed import close_distributed
    from swirl_agents.train.trainer import Trainer

    trajectories = list(load_trajectories(config.data))
    tokenizer = AutoTokenizer.from_pretrained(config.model)
    model = AutoModelForCausalLM.from_pretrained(config.model, dtype=torch.float32)
    judge = _build_judge(args.judge, trajectories) if config.objective == "swirl-online" else None
    try:
        trainer = Trainer(config, model, tokenizer, trajectories, judge=judge)
        metrics = trainer.train()
        if trainer.context.is_main:
            print(json.dumps(metrics))
            print(f"model written to {trainer.out_dir / 'final'}")
    finally:
        close_distributed()
    return 0


def _build_judge(spec: str, trajectories: list) -> Any:
    """The process judge for online SWiRL, built for the one env the trajectories come from."""
    import gymnasium as gym

    import swirl_envs  # noqa: F401  (registers the env ids)
    from swirl_agents.judges import make_judge

    envs = {(t.env_id, json.dumps(t.env_kwargs, sort_keys=True)) for t in trajectories}
    if len(envs) != 1:
        raise SystemExit(
            f"swirl train: --judge needs trajectories of one env, found {sorted(envs)}"
        )
    env_id, kwargs = envs.pop()
    try:
        return make_judge(spec, gym.make(env_id, **json.loads(kwargs)).unwrapped)
    except ValueError as error:
        raise SystemExit(f"swirl train: --judge: {error}") from None

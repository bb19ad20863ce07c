"""Training: offline or online SWiRL, or the SFT baseline, from a checkpoint folder to another."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from swirl_agents.stages.errors import StageError
from swirl_agents.trajectory import Trajectory


def train(
    config: Any,
    trajectories: Sequence[Trajectory] | None = None,
    *,
    judge: str | Any | None = None,
) -> dict[str, Any]:
    """Train ``config.model`` on ``trajectories`` with ``config``'s objective.

    With ``config.resume`` a run continues from its last checkpoint in ``config.out_dir``.
    The final model is ``out_dir/final`` (a ``from_pretrained`` folder that records the
    prompt format it was trained with, so evaluation lays prompts out the same way).

    Args:
        config: A ``TrainConfig``.
        trajectories: The training set (default: the file ``config.data``).
        judge: swirl-online only: the process judge, or its spec (``programmatic``,
            ``hf:PATH``), built for the one env the trajectories come from.

    Returns:
        A JSON-ready summary: ``model`` (the final folder), ``metrics`` of the last
        step, ``final_loss`` and a one-line ``summary``; ``is_main`` tells the first
        of several ``torchrun`` processes.

    Raises:
        StageError: No model or data, an online run without a judge, a model that cannot
            be loaded, or settings the trainer refuses.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from swirl_agents.store import load_trajectories
    from swirl_agents.train.trainer import Trainer

    if not config.model:
        raise StageError("training needs a model to start from")
    if trajectories is None:
        if not config.data:
            raise StageError("training needs trajectories (a data file)")
        trajectories = list(load_trajectories(config.data))
    trajectories = list(trajectories)
    if config.objective == "swirl-online":
        if judge is None:
            raise StageError("the swirl-online objective needs a process judge")
        if isinstance(judge, str):
            judge = _online_judge(judge, trajectories)
    else:
        judge = None
    try:
        tokenizer = AutoTokenizer.from_pretrained(config.model)
        model = AutoModelForCausalLM.from_pretrained(config.model, dtype=torch.float32)
    except OSError as error:
        raise StageError(f"cannot load the model {config.model!r}: {error}") from None
    try:
        trainer = Trainer(config, model, tokenizer, trajectories, judge=judge)
    except ValueError as error:
        raise StageError(str(error)) from None
    metrics = trainer.train()
    return {
        "model": str(trainer.out_dir / "final"),
        "metrics": metrics,
        "final_loss": metrics.get("loss"),
        "is_main": trainer.context.is_main,
        "summary": f"{config.objective} {config.steps} steps on {len(trajectories)} "
        f"trajectories, last loss {metrics.get('loss', float('nan')):.4f}",
    }


def _online_judge(spec: str, trajectories: Sequence[Trajectory]) -> Any:
    """The process judge ``spec`` for the one env the trajectories come from."""
    from swirl_agents.judges import make_judge
    from swirl_agents.stages.envs import make_env

    envs = {(t.env_id, json.dumps(t.env_kwargs, sort_keys=True)) for t in trajectories}
    if len(envs) != 1:
        raise StageError(f"an online judge needs trajectories of one env, found {sorted(envs)}")
    env_id, kwargs = envs.pop()
    try:
        return make_judge(spec, make_env(env_id, json.loads(kwargs)).unwrapped)
    except ValueError as error:
        raise StageError(f"judge {spec}: {error}") from None

"""Checkpoints that resume exactly: model, optimizer, scheduler, RNG states and data position.

A checkpoint is a directory ``out_dir/checkpoint-N`` (N = optimizer steps taken)::

    model/             the model as ``save_pretrained`` writes it (full weights, or the
                       LoRA adapter), plus the tokenizer: loadable for evaluation
    trainer_state.pt   step, optimizer, scheduler, data position, the config, and for
                       LoRA the adapter weights under the training model's own names
    rng-R.pt           the Python, NumPy and torch RNG states of process R

It is written to ``checkpoint-N.tmp`` and renamed when complete, so a run killed
while saving leaves no half checkpoint behind, and ``latest_checkpoint`` ignores
leftovers. With several processes the state dicts are gathered in full on every
process (``torch.distributed.checkpoint.state_dict``), which works the same for one
process, DDP and FSDP; the directory must be on a file system all processes share.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

from swirl_agents.train.distributed import DistributedContext, barrier, unwrap_model

TRAINING_RECORD = "swirl_training.json"
"""Beside a final model: how it was trained (``prompt_format``, ``objective``, the settings)."""
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
_FULL = StateDictOptions(full_state_dict=True, cpu_offload=True)
_LOAD = StateDictOptions(full_state_dict=True, strict=False)


def latest_checkpoint(out_dir: str | Path) -> Path | None:
    """The complete checkpoint with the most steps in ``out_dir``, or None."""
    found = []
    for path in Path(out_dir).glob("checkpoint-*"):
        match = _CHECKPOINT.match(path.name)
        if match and (path / "trainer_state.pt").is_file():
            found.append((int(match.group(1)), path))
    return max(found)[1] if found else None


def save_checkpoint(
    directory: Path,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    tokenizer: Any,
    trainer_state: dict[str, Any],
    context: DistributedContext,
) -> Path:
    """Write a resumable checkpoint to ``directory`` (atomically; see the module docstring).

    Args:
        directory: ``out_dir/checkpoint-N``.
        model: The training model (wrapped or not).
        optimizer: Its optimizer.
        scheduler: The learning-rate scheduler.
        tokenizer: Saved next to the model so ``model/`` loads on its own.
        trainer_state: Step, data position and config (picklable, small).
        context: Which process this is; every process must call this.

    Returns:
        ``directory``.
    """
    staging = directory.with_name(directory.name + ".tmp")
    model_state = gather_model_state(model)
    optimizer_state = get_optimizer_state_dict(model, optimizer, options=_FULL)
    if context.is_main:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        export_model(staging / "model", model, tokenizer, model_state)
        state = dict(trainer_state)
        state["optimizer"] = optimizer_state
        state["scheduler"] = scheduler.state_dict()
        state["adapter"] = _trainable_state(model, model_state) if _is_peft(model) else None
        torch.save(state, staging / "trainer_state.pt")
    barrier(context)
    torch.save(_rng_state(), staging / f"rng-{context.rank}.pt")
    barrier(context)
    if context.is_main:
        shutil.rmtree(directory, ignore_errors=True)
        staging.rename(directory)
    barrier(context)
    return directory


def load_checkpoint(
    directory: Path,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    context: DistributedContext,
) -> dict[str, Any]:
    """Restore model, optimizer, scheduler and this process's RNG from ``directory``.

    Returns:
        The trainer state (step, data position, config) saved with it.
    """
    state = torch.load(directory / "trainer_state.pt", map_location="cpu", weights_only=False)
    weights = (
        state["adapter"] if state["adapter"] is not None else _read_weights(directory / "model")
    )
    missing = set(set_model_state_dict(model, weights, options=_LOAD).missing_keys)
    unloaded = [name for name in _trainable_names(model) if name in missing]
    if unloaded:
        raise ValueError(f"{directory}: the checkpoint has no weights for {unloaded[:5]}")
    set_optimizer_state_dict(model, optimizer, state["optimizer"], options=_LOAD)
    scheduler.load_state_dict(state["scheduler"])
    rng_file = directory / f"rng-{context.rank}.pt"
    if not rng_file.is_file():
        raise FileNotFoundError(
            f"{rng_file} is missing: the checkpoint was written by fewer processes "
            "than this run has."
        )
    _set_rng_state(torch.load(rng_file, weights_only=False))
    return state


def gather_model_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The full model state dict on the CPU (a collective: every process must call it)."""
    return get_model_state_dict(model, options=_FULL)


def export_model(
    directory: Path,
    model: nn.Module,
    tokenizer: Any,
    state: dict[str, torch.Tensor],
    record: dict[str, Any] | None = None,
) -> None:
    """Save the model (or its LoRA adapter) and the tokenizer with ``save_pretrained``.

    Args:
        directory: Where to write.
        model: The training model (wrapped or not).
        tokenizer: Saved alongside when not None.
        state: The full state dict from ``gather_model_state``.
        record: How the model was trained (``TRAINING_RECORD``), saved alongside.
    """
    unwrap_model(model).save_pretrained(directory, state_dict=state)
    if tokenizer is not None:
        tokenizer.save_pretrained(directory)
    if record is not None:
        path = Path(directory) / TRAINING_RECORD
        path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def read_training_record(directory: str | Path) -> dict[str, Any] | None:
    """How the model in ``directory`` was trained (its prompt format, its settings), if recorded."""
    path = Path(directory) / TRAINING_RECORD
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise ValueError(f"{path}: corrupt training record ({error})") from None


def _is_peft(model: nn.Module) -> bool:
    return hasattr(unwrap_model(model), "peft_config")


def _trainable_state(model: nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    trainable = set(_trainable_names(model))
    return {name: tensor for name, tensor in state.items() if name in trainable}


def _trainable_names(model: nn.Module) -> list[str]:
    """Trainable parameter names as the state-dict API spells them (no DDP prefix)."""
    return [name for name, p in unwrap_model(model).named_parameters() if p.requires_grad]


def _read_weights(directory: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    files = sorted(directory.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"{directory} holds no .safetensors weights.")
    weights: dict[str, torch.Tensor] = {}
    for file in files:
        weights.update(load_file(file))
    return weights


def _rng_state() -> dict[str, Any]:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])

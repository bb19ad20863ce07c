"""``TrainConfig``: every setting of a training run, and the one source of its defaults.

The CLI builds its flags from these fields (``swirl_agents.flags``: names, types,
defaults and the docstring under each field as help), and a run config's ``train``
section is checked by it, so a setting and its default are written once, here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from swirl_agents.encoding import PROMPT_FORMATS

Objective = Literal["swirl-offline", "swirl-online", "sft"]
OBJECTIVES: tuple[str, ...] = ("swirl-offline", "swirl-online", "sft")
SCHEDULES: tuple[str, ...] = ("cosine", "linear", "constant")
WEIGHTINGS: tuple[str, ...] = ("judge", "uniform")
DEFAULT_REDUCTION = {"swirl-offline": "action_mean", "swirl-online": "action_sum", "sft": "token"}
"""How each objective reduces an action's tokens (see ``swirl_agents.train.losses``)."""


@dataclass
class TrainConfig:
    """Settings of one training run (data, objective, optimisation, checkpoints, scale)."""

    # data
    data: str = ""
    """Trajectories JSONL to train on (a store written by ``swirl generate``, usually filtered)."""
    model: str = ""
    """Model to start from: a local path or name for ``from_pretrained``."""
    max_length: int = 2048
    """Longest training sequence in tokens; a longer transcript keeps the actions that fit whole."""
    prompt_format: str = "auto"
    """Layout the policy sees: text (the transcript), chat (chat template) or auto (chat if any)."""
    weighting: str = "judge"
    """Offline step weights: ``judge`` (each step's process-judge score) or ``uniform`` (all 1)."""
    seed: int = 0
    """Seeds the data order, sampling and any random initialisation."""

    # objective
    objective: str = "swirl-offline"
    """swirl-offline (stored actions by step reward), swirl-online (sampled, judged) or sft."""
    loss_reduction: str | None = None
    """Token reduction: action_mean, action_sum or token; None: the objective's default."""
    num_samples: int = 4
    """Online: actions sampled per state (G, the group of the per-state baseline)."""
    temperature: float = 1.0
    """Online: sampling temperature."""
    top_p: float = 1.0
    """Online: nucleus sampling mass."""
    max_new_tokens: int = 128
    """Online: longest sampled action in tokens."""
    stop: tuple[str, ...] = ("</search_query>", "</math_exp>", "</answer>")
    """Online: closing tags that end a sampled action."""
    kl_coef: float = 0.0
    """Online: weight of the KL penalty to the frozen start model (0 turns it off)."""

    # optimisation
    steps: int = 100
    """Optimizer steps to run."""
    batch_size: int = 8
    """Examples per optimizer step over all processes: trajectories, or states when online."""
    micro_batch_size: int = 8
    """Examples per forward pass on one process; the rest of the batch is gradient accumulation.

    A process's examples are sorted by length before they are cut into micro-batches,
    so each micro-batch pads only to its own longest example (the loss is the same sum).
    """
    lr: float = 1e-5
    """Peak learning rate (AdamW)."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    adam_betas: tuple[float, float] = (0.9, 0.999)
    """AdamW betas."""
    max_grad_norm: float = 1.0
    """Clip the global gradient norm to this (0 turns clipping off; the norm is still logged)."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass to save memory."""
    bf16: bool = True
    """Use bf16 autocast on CUDA (weights and optimizer stay fp32); ignored on CPU."""

    # schedule
    lr_schedule: str = "cosine"
    """Learning-rate schedule after warm-up: cosine, linear (both decay to 0) or constant."""
    warmup_steps: int = 0
    """Steps of linear warm-up from 0 to ``lr``."""

    # checkpointing and logging
    out_dir: str = "runs/train"
    """Where checkpoints (``checkpoint-N``), ``metrics.jsonl`` and the final model go."""
    save_every: int = 0
    """Write a checkpoint every N steps (0: only at the end)."""
    resume: bool = False
    """Continue from the latest checkpoint in ``out_dir``, exactly where it stopped."""
    log_every: int = 1
    """Write a metrics line every N steps."""
    progress: bool = True
    """Show a tqdm progress bar (on the first process)."""

    # distributed
    device: str | None = None
    """``cpu``, ``cuda`` or ``cuda:N``; None picks the local GPU when there is one."""
    fsdp: bool = False
    """Shard the model with FSDP under ``torchrun`` instead of replicating it (DDP)."""

    # lora
    lora_r: int = 0
    """LoRA rank; above 0 trains LoRA adapters (peft) instead of all weights."""
    lora_alpha: int = 16
    """LoRA scaling numerator (the update is scaled by alpha / r)."""
    lora_dropout: float = 0.0
    """Dropout on the LoRA branch."""
    lora_target_modules: tuple[str, ...] = (
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj",
    )  # fmt: skip
    """Module names that get adapters (Llama and Qwen2 names by default)."""

    def __post_init__(self):
        self.stop = tuple(self.stop)
        self.adam_betas = tuple(self.adam_betas)  # type: ignore[assignment]
        self.lora_target_modules = tuple(self.lora_target_modules)
        _check_choice("objective", self.objective, OBJECTIVES)
        _check_choice("lr_schedule", self.lr_schedule, SCHEDULES)
        _check_choice("weighting", self.weighting, WEIGHTINGS)
        _check_choice("prompt_format", self.prompt_format, PROMPT_FORMATS)
        if self.loss_reduction is not None:
            _check_choice("loss_reduction", self.loss_reduction, tuple(DEFAULT_REDUCTION.values()))
        for name in ("steps", "batch_size", "micro_batch_size", "max_length", "num_samples"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}.")
        for name in ("save_every", "warmup_steps", "lora_r", "kl_coef", "max_grad_norm"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)}.")
        if self.log_every < 1:
            raise ValueError(f"log_every must be at least 1, got {self.log_every}.")

    @property
    def reduction(self) -> str:
        """The loss reduction in effect (``loss_reduction`` or the objective's default)."""
        return self.loss_reduction or DEFAULT_REDUCTION[self.objective]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from a dict; an unknown key is an error (a typo must not be ignored)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown training settings {unknown}; known: {sorted(known)}")
        return cls(**data)


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}.")

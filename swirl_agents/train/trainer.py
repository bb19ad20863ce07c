"""The trainer: one explicit loop for offline SWiRL, online SWiRL and the SFT baseline.

Each optimizer step reads one global batch (trajectories, or states for the online
objective), takes this process's slice of it, and runs::

    batch -> (online: sample G actions per state and judge them) -> loss -> backward
          -> accumulate over micro-batches -> clip -> step -> log -> checkpoint

The three objectives differ only in the examples and the reduction of the loss
(``swirl_agents.train.losses``):

- ``swirl-offline``: every stored action of a trajectory, weighted by its process
  judge score, all K in one forward pass over the full transcript;
- ``swirl-online``: G sampled actions per saved state, weighted by group-normalised
  advantages of their judge scores (``stepwise_rl``), optional KL to the start model;
- ``sft``: the same stored actions with unit weights and a per-token mean.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import time
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import nn

from swirl_agents.decompose import decompose_trajectory
from swirl_agents.encoding import resolve_prompt_format
from swirl_agents.train.checkpoint import (
    export_model,
    gather_model_state,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from swirl_agents.train.config import TrainConfig
from swirl_agents.train.data import (
    Batch,
    BatchSampler,
    TrainExample,
    collate,
    count_units,
    offline_examples,
)
from swirl_agents.train.distributed import (
    all_reduce_sum,
    barrier,
    gradient_sync,
    init_distributed,
    shard,
    unwrap_model,
    wrap_model,
)
from swirl_agents.train.losses import kl_penalty, reduce_over_actions, token_nll
from swirl_agents.train.stepwise_rl import SamplingConfig, sample_and_judge
from swirl_agents.trajectory import Trajectory

logger = logging.getLogger("swirl_agents.train")

_RESUME_MUST_MATCH = (
    "objective", "batch_size", "seed", "max_length", "weighting", "prompt_format", "data",
)  # fmt: skip
"""Settings that decide the data order and the examples; a resumed run must keep them."""


class Trainer:
    """Train a causal LM with the step-wise objective (or the SFT baseline) on trajectories.

    Args:
        config: Every setting of the run.
        model: A Hugging Face causal LM (fp32 weights; bf16 autocast is applied on CUDA).
        tokenizer: Its tokenizer.
        dataset: The trajectories to train on (usually the process-filtered store).
        judge: The process judge (any object with ``judge_process``); needed for
            ``swirl-online`` only.
    """

    def __init__(
        self,
        config: TrainConfig,
        model: nn.Module,
        tokenizer: Any,
        dataset: Sequence[Trajectory],
        *,
        judge: Any = None,
    ):
        self.config = config
        self.tokenizer = tokenizer
        self.judge = judge
        self.context = init_distributed(config.device)
        self.online = config.objective == "swirl-online"
        if self.online and judge is None:
            raise ValueError("the swirl-online objective needs a process judge.")
        if config.batch_size % self.context.world_size:
            raise ValueError(
                f"batch_size {config.batch_size} must divide by the "
                f"{self.context.world_size} processes."
            )
        self.pad_id = (
            tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        )
        self.examples = self._build_examples(dataset)
        torch.manual_seed(config.seed)  # LoRA initialisation and online sampling
        model = self._prepare_model(model)
        self.reference = self._reference_model(model)
        self.model = wrap_model(model, self.context, fsdp=config.fsdp)
        self.parameters = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = _make_optimizer(self.parameters, config)
        self.scheduler = _make_scheduler(self.optimizer, config)
        self.sampler = BatchSampler(len(self.examples), config.batch_size, config.seed)
        self.step = 0
        self.out_dir = Path(config.out_dir)
        self.sampling = SamplingConfig(
            num_samples=config.num_samples,
            temperature=config.temperature,
            top_p=config.top_p,
            max_new_tokens=config.max_new_tokens,
            stop=config.stop,
            prompt_format=config.prompt_format,
            synced=config.fsdp,
        ) if self.online else None  # fmt: skip
        if config.resume:
            self._resume()

    # ---- the loop --------------------------------------------------------------------

    def train(self) -> dict[str, float]:
        """Run until ``config.steps`` optimizer steps; returns the last step's metrics.

        Writes ``metrics.jsonl``, a checkpoint every ``save_every`` steps, and the final
        model to ``out_dir/final``.
        """
        from tqdm.auto import tqdm

        config = self.config
        show = self.context.is_main and config.progress
        metrics: dict[str, float] = {}
        with tqdm(total=config.steps, initial=self.step, disable=not show, desc="train") as bar:
            while self.step < config.steps:
                metrics = self.train_step()
                if self.step % config.log_every == 0 or self.step == config.steps:
                    self._log(metrics)
                if config.save_every and self.step % config.save_every == 0:
                    self.save()
                bar.update(1)
                bar.set_postfix(loss=f"{metrics['loss']:.4f}", lr=f"{metrics['lr']:.2e}")
        state = gather_model_state(self.model)
        if self.context.is_main:
            record = {
                "prompt_format": resolve_prompt_format(self.tokenizer, config.prompt_format),
                "objective": config.objective,
                "config": config.to_dict(),
            }
            export_model(self.out_dir / "final", self.model, self.tokenizer, state, record)
        barrier(self.context)
        return metrics

    def train_step(self) -> dict[str, float]:
        """One optimizer step on the next global batch; returns its metrics."""
        started = time.perf_counter()
        local = shard(self.sampler.next_batch(), self.context)
        extra: dict[str, float] = {}
        if self.online:
            examples, extra = self._sample(local)
        else:
            examples = [self.examples[i] for i in local]
        (units,) = all_reduce_sum([count_units(examples, self.config.reduction)], self.context)
        # Similar lengths share a micro-batch: padding to the longest costs less compute.
        examples = sorted(examples, key=lambda example: len(example.tokens.input_ids))
        size = self.config.micro_batch_size
        micro_batches = [examples[i : i + size] for i in range(0, len(examples), size)]
        loss_sum = kl_sum = tokens = 0.0
        for number, micro in enumerate(micro_batches):
            batch = collate(micro, self.pad_id).to(self.context.device)
            with gradient_sync(self.model, enabled=number == len(micro_batches) - 1):
                loss, kl = self._loss(batch, max(units, 1.0))
                # Each process holds 1/world of the global sum; DDP and FSDP average
                # gradients over processes, so scale back up to the global sum.
                (loss * self.context.world_size).backward()
            loss_sum += float(loss.detach())
            kl_sum += float(kl)
            tokens += batch.num_tokens
        grad_norm = self._clip_gradients()
        lr = self.scheduler.get_last_lr()[0]
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        loss_sum, kl_sum, tokens = all_reduce_sum([loss_sum, kl_sum, tokens], self.context)
        seconds = time.perf_counter() - started
        metrics = {
            "step": self.step,
            "loss": loss_sum,
            "lr": lr,
            "grad_norm": grad_norm,
            "tokens": tokens,
            "tokens_per_s": tokens / seconds,
            "seconds": seconds,
            "epoch": self.sampler.epoch,
            **extra,
        }
        if self.config.kl_coef:
            metrics["kl"] = kl_sum
        return metrics

    def save(self) -> Path:
        """Write ``out_dir/checkpoint-<step>`` (every process must call this)."""
        state = {
            "step": self.step,
            "sampler": self.sampler.state_dict(),
            "config": self.config.to_dict(),
        }
        return save_checkpoint(
            self.out_dir / f"checkpoint-{self.step}",
            model=self.model,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            tokenizer=self.tokenizer,
            trainer_state=state,
            context=self.context,
        )

    # ---- pieces of a step ------------------------------------------------------------

    def _loss(self, batch: Batch, units: float) -> tuple[torch.Tensor, torch.Tensor]:
        reduction = self.config.reduction
        keep, labels, action_index = batch.trained_positions()
        logits = self._logits(self.model, batch, keep)
        nll = token_nll(logits, labels, action_index)
        loss = reduce_over_actions(
            nll, action_index, batch.weights, reduction=reduction, normalizer=units
        )
        kl = torch.zeros(())
        if self.config.kl_coef:
            kl = kl_penalty(
                -nll,
                self._reference_logprobs(batch, keep, labels, action_index),
                action_index,
                reduction=reduction,
                normalizer=units,
            )
            loss = loss + self.config.kl_coef * kl
        if not bool((action_index >= 0).any()):
            # Nothing to learn here, but every process must still run a backward pass
            # through the model so that the gradient reduction does not wait forever.
            loss = loss + 0.0 * logits.sum()
        return loss, kl.detach()

    def _logits(self, model: nn.Module, batch: Batch, keep: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, len(keep), V)`` at the kept positions only.

        The LM head (the biggest matrix for a large vocabulary) then never runs on the
        prompt or the tool results.
        """
        with self._autocast():
            return model(
                input_ids=batch.input_ids,
                attention_mask=batch.attention_mask,
                use_cache=False,
                logits_to_keep=keep,
            ).logits

    @torch.no_grad()
    def _reference_logprobs(
        self, batch: Batch, keep: torch.Tensor, labels: torch.Tensor, action_index: torch.Tensor
    ) -> torch.Tensor:
        if self.reference is not None:
            logits = self._logits(self.reference, batch, keep)
        else:  # LoRA: the start model is the base model with the adapters switched off
            with unwrap_model(self.model).disable_adapter():
                logits = self._logits(self.model, batch, keep)
        return -token_nll(logits, labels, action_index)

    def _sample(self, local: list[int]) -> tuple[list[TrainExample], dict[str, float]]:
        started = time.perf_counter()
        states = [self.examples[i] for i in local]
        sampled = sample_and_judge(
            unwrap_model(self.model), self.tokenizer, states, self.judge, self.sampling
        )
        rewards = sampled.rewards
        spread = (rewards.max(dim=1).values > rewards.min(dim=1).values).float()
        lengths = [len(e.tokens.input_ids) - e.tokens.action_spans[0][0] for e in sampled.examples]
        counts = [rewards.sum(), rewards.numel(), spread.sum(), spread.numel(), sum(lengths)]
        totals = all_reduce_sum([float(c) for c in counts] + [sampled.unparsed], self.context)
        return sampled.examples, {
            "reward_mean": totals[0] / totals[1],
            "groups_with_signal": totals[2] / totals[3],
            "action_tokens_mean": totals[4] / totals[1],
            "unparsed_judgements": totals[5],
            "sample_seconds": time.perf_counter() - started,
        }

    def _clip_gradients(self) -> float:
        limit = self.config.max_grad_norm or math.inf
        norm = torch.nn.utils.clip_grad_norm_(self.parameters, limit)
        if hasattr(norm, "full_tensor"):  # FSDP returns a distributed tensor
            norm = norm.full_tensor()
        return float(norm)

    def _autocast(self):
        device = self.context.device
        if self.config.bf16 and device.type == "cuda":
            return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        return nullcontext()

    # ---- set-up ----------------------------------------------------------------------

    def _build_examples(self, trajectories: Sequence[Trajectory]) -> list:
        if not trajectories:
            raise ValueError("the training set has no trajectories.")
        if self.online:
            return [sub for trajectory in trajectories for sub in decompose_trajectory(trajectory)]
        weighting = "uniform" if self.config.objective == "sft" else self.config.weighting
        return offline_examples(
            trajectories,
            self.tokenizer,
            max_length=self.config.max_length,
            weighting=weighting,
            prompt_format=self.config.prompt_format,
        )

    def _prepare_model(self, model: nn.Module) -> nn.Module:
        config = self.config
        if config.gradient_checkpointing:
            # transformers 5 renamed it; the old name still works on older releases.
            enable = getattr(model, "activation_checkpointing_enable", None)
            if enable is not None:
                enable(activation_checkpointing_kwargs={"use_reentrant": False})
            else:
                model.gradient_checkpointing_enable(
                    gradient_checkpointing_kwargs={"use_reentrant": False}
                )
        if config.lora_r:
            from peft import LoraConfig, get_peft_model

            lora = LoraConfig(
                r=config.lora_r,
                lora_alpha=config.lora_alpha,
                lora_dropout=config.lora_dropout,
                target_modules=list(config.lora_target_modules),
                task_type="CAUSAL_LM",
            )
            model = get_peft_model(model, lora)
        if config.fsdp:  # fully_shard moves one block at a time, so a model need not fit
            return model.train()
        return model.to(self.context.device).train()

    def _reference_model(self, model: nn.Module) -> nn.Module | None:
        """A frozen copy of the start model for the KL penalty (LoRA needs none)."""
        if not (self.online and self.config.kl_coef) or self.config.lora_r:
            return None
        reference = copy.deepcopy(model).eval().requires_grad_(False)
        return (
            wrap_model(reference, self.context, fsdp=self.config.fsdp)
            if self.config.fsdp
            else reference
        )

    def _resume(self) -> None:
        checkpoint = latest_checkpoint(self.out_dir)
        if checkpoint is None:
            logger.info("no checkpoint in %s; starting from step 0", self.out_dir)
            return
        state = load_checkpoint(
            checkpoint,
            model=self.model,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            context=self.context,
        )
        saved, current = state["config"], self.config.to_dict()
        changed = [key for key in _RESUME_MUST_MATCH if saved.get(key) != current[key]]
        if changed:
            raise ValueError(
                f"cannot resume {checkpoint}: {changed} differ from the checkpoint's settings."
            )
        self.sampler.load_state_dict(state["sampler"])
        self.step = int(state["step"])
        if self.context.is_main:
            _truncate_metrics(self.out_dir / "metrics.jsonl", self.step)
        logger.info("resumed from %s at step %d", checkpoint, self.step)

    def _log(self, metrics: dict[str, float]) -> None:
        if not self.context.is_main:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with open(self.out_dir / "metrics.jsonl", "a", encoding="utf-8") as handle:
            handle.write(json.dumps(metrics) + "\n")


def _make_optimizer(parameters: list[nn.Parameter], config: TrainConfig) -> torch.optim.AdamW:
    """AdamW, with the fused kernel (one launch for all tensors) where torch has it.

    FSDP's sharded parameters keep the default multi-tensor kernel.
    """
    settings = {"lr": config.lr, "betas": config.adam_betas, "weight_decay": config.weight_decay}
    if not config.fsdp:
        try:
            return torch.optim.AdamW(parameters, fused=True, **settings)
        except (RuntimeError, ValueError):  # no fused kernel for this device or torch
            pass
    return torch.optim.AdamW(parameters, **settings)


def _make_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig):
    from transformers import get_scheduler

    name = "constant_with_warmup" if config.lr_schedule == "constant" else config.lr_schedule
    return get_scheduler(
        name, optimizer, num_warmup_steps=config.warmup_steps, num_training_steps=config.steps
    )


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop metrics lines after ``step`` (written by the run that was interrupted)."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if json.loads(line)["step"] <= step:
                kept.append(line + "\n")
        except (ValueError, KeyError, TypeError):  # a line torn by the kill
            continue
    path.write_text("".join(kept), encoding="utf-8")

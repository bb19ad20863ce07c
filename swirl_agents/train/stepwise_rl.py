"""Online step-wise RL: sample G actions per saved state, judge each, weight by group advantage.

This is SWiRL's objective J(θ) = E_{s∈T, a∼π_θ(s)}[R(a|s)] taken literally: the states
s come from the decomposed trajectories, the actions are sampled from the current
policy, and R(a|s) is the process judge's score of the action in its state. No tool
runs: a step's reward is the judge's view of the step alone, which is what lets
SWiRL learn from every step of a trajectory without replaying the environment.

The update is REINFORCE with a per-state group baseline: the G rewards of a state
are normalised to advantages (``group_advantages``), and the trainer minimises
``stepwise_loss`` with the advantages as action weights (one gradient step per
sample, so no importance ratio is needed), plus an optional KL penalty to the
frozen start model.

Sampling uses Hugging Face ``generate`` on the model being trained, batched over
states, stopping at an action's closing tag (a stop string) or an end-of-turn token.
The sampled token ids themselves are trained (not a re-tokenization of the text),
after the state's ids built segment by segment exactly as in offline training.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers import GenerationConfig

from swirl_agents.decompose import SubTrajectory, tokenize_state
from swirl_agents.encoding import PromptFormat, TokenizedTrajectory
from swirl_agents.judges.base import Judgement, ProcessQuery
from swirl_agents.train.data import TrainExample
from swirl_agents.train.losses import group_advantages


@dataclass(frozen=True)
class SamplingConfig:
    """How actions are sampled for the online objective.

    Attributes:
        num_samples: G, actions per state.
        temperature: Softmax temperature (must be positive: G greedy samples are identical).
        top_p: Nucleus sampling mass.
        max_new_tokens: Longest action in tokens.
        stop: Closing tags that end an action.
        prompt_format: The layout the policy sees (``swirl_agents.encoding``).
        synced: Keep every process generating until all are done (needed under FSDP,
            where each forward pass is a collective).
    """

    num_samples: int
    temperature: float
    top_p: float
    max_new_tokens: int
    stop: tuple[str, ...]
    prompt_format: PromptFormat = "auto"
    synced: bool = False

    def __post_init__(self):
        if self.temperature <= 0:
            raise ValueError(f"online sampling needs temperature > 0, got {self.temperature}.")


@dataclass
class SampledBatch:
    """The examples built from one batch of states and what the sampling looked like.

    Attributes:
        examples: One example per sampled action (state ids + action ids, weight =
            advantage), G per state, grouped by state.
        rewards: ``(S, G)`` the judge's rewards.
        actions: The sampled actions as text, grouped by state.
        unparsed: Judgements that held no verdict (counted as reward 0).
    """

    examples: list[TrainExample]
    rewards: torch.Tensor
    actions: list[list[str]]
    unparsed: int


def sample_and_judge(
    model: nn.Module,
    tokenizer: Any,
    states: Sequence[SubTrajectory],
    judge: Any,
    sampling: SamplingConfig,
) -> SampledBatch:
    """Sample G actions for each state, judge them, and turn them into weighted examples.

    Args:
        model: The policy (the unwrapped training model; it is put in eval mode for
            generation and back to train mode after).
        tokenizer: Its tokenizer.
        states: The saved states to act from (their ``action`` is not used).
        judge: Any object with ``judge_process(queries) -> list[Judgement]``.
        sampling: Sampling settings.
    """
    prompts = [tokenize_state(state, tokenizer, sampling.prompt_format) for state in states]
    action_ids = generate_actions(model, tokenizer, prompts, sampling)
    texts = [
        [tokenizer.decode(ids, skip_special_tokens=True) for ids in group] for group in action_ids
    ]
    queries = [
        ProcessQuery(state.task_id, state.step, state.state, text, state.question)
        for state, group in zip(states, texts, strict=True)
        for text in group
    ]
    judgements = judge.judge_process(queries)
    if len(judgements) != len(queries):
        raise ValueError(
            f"the judge returned {len(judgements)} judgements for {len(queries)} queries."
        )
    rewards = torch.tensor([judgement_reward(j) for j in judgements]).view(len(states), -1)
    advantages = group_advantages(rewards)
    examples = [
        TrainExample(
            TokenizedTrajectory(
                tuple(prompt) + tuple(ids), ((len(prompt), len(prompt) + len(ids)),)
            ),
            (float(advantage),),
        )
        for prompt, group, group_advantage in zip(prompts, action_ids, advantages, strict=True)
        for ids, advantage in zip(group, group_advantage, strict=True)
    ]
    unparsed = sum(j.good is None and j.score is None for j in judgements)
    return SampledBatch(examples, rewards, texts, unparsed)


def judgement_reward(judgement: Judgement) -> float:
    """R(a|s): the judge's score (1/0 if hard, P(GOOD) if soft); 0 when unreadable."""
    return float(judgement.score) if judgement.score is not None else 0.0


@torch.no_grad()
def generate_actions(
    model: nn.Module, tokenizer: Any, prompts: Sequence[Sequence[int]], sampling: SamplingConfig
) -> list[list[list[int]]]:
    """Sample G continuations of each prompt, each cut where its action ends.

    Returns:
        For each prompt, G lists of action token ids.
    """
    pad_id = (
        tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    )
    device = next(model.parameters()).device
    length = max(len(prompt) for prompt in prompts)
    input_ids = torch.full((len(prompts), length), pad_id, dtype=torch.long)
    attention_mask = torch.zeros_like(input_ids)
    for row, prompt in enumerate(prompts):  # left padding: every prompt ends at the same column
        input_ids[row, length - len(prompt) :] = torch.tensor(prompt, dtype=torch.long)
        attention_mask[row, length - len(prompt) :] = 1
    eos_ids = _eos_ids(model, tokenizer)
    # A fresh config, so that a checkpoint's own defaults (top_k, repetition penalty, ...)
    # never bend the distribution the policy gradient assumes the actions came from.
    generation = GenerationConfig(
        do_sample=True,
        temperature=sampling.temperature,
        top_p=sampling.top_p,
        top_k=0,
        max_new_tokens=sampling.max_new_tokens,
        num_return_sequences=sampling.num_samples,
        eos_token_id=sorted(eos_ids) or None,
        pad_token_id=pad_id,
        stop_strings=list(sampling.stop) or None,
    )
    was_training = model.training
    model.eval()
    try:
        output = model.generate(
            input_ids=input_ids.to(device),
            attention_mask=attention_mask.to(device),
            generation_config=generation,
            tokenizer=tokenizer,
            synced_gpus=sampling.synced,
        )
    finally:
        model.train(was_training)
    end_ids = eos_ids | {pad_id}
    continuations = output[:, length:].tolist()
    actions = [cut_action(ids, tokenizer, sampling.stop, end_ids) for ids in continuations]
    groups = sampling.num_samples
    return [actions[i : i + groups] for i in range(0, len(actions), groups)]


def cut_action(
    ids: Sequence[int], tokenizer: Any, stop: Sequence[str], end_ids: set[int]
) -> list[int]:
    """The tokens of one sampled action, cut where the action ends.

    An action ends at its first end token (kept: it was sampled) or at the token that
    completes a stop string, whichever comes first.
    """
    ids = list(ids)
    for position, token in enumerate(ids):
        if token in end_ids:
            ids = ids[: position + 1]
            break
    if not any(s in tokenizer.decode(ids) for s in stop):
        return ids
    # The decoded prefix grows with n, so the shortest prefix holding a stop string is
    # found by bisection (a handful of decodes instead of one per token).
    low, high = 1, len(ids)
    while low < high:
        middle = (low + high) // 2
        if any(s in tokenizer.decode(ids[:middle]) for s in stop):
            high = middle
        else:
            low = middle + 1
    return ids[:low]


def _eos_ids(model: nn.Module, tokenizer: Any) -> set[int]:
    """The model's end-of-sequence ids (its generation config's, else the tokenizer's)."""
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if eos is None:
        eos = tokenizer.eos_token_id
    return set(eos if isinstance(eos, list) else [eos] if eos is not None else [])

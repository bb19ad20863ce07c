"""The step-wise objective as pure functions of tensors (no model, no state).

SWiRL maximises J(θ) = E_{s∈T, a∼π_θ(s)}[R(a|s)] over the states s of the decomposed
trajectories. Every trainer objective here is one weighted sum over actions:

    loss = (1 / N) · Σ_a w_a · ℓ_a

where a runs over the actions in the (global) batch, w_a is the action's weight and
ℓ_a reduces the negative log-likelihood of the action's tokens:

- ``"action_mean"``: ℓ_a = mean over a's tokens of -log p(token), N = number of
  actions (offline SWiRL; each step counts the same whatever its length);
- ``"action_sum"``: ℓ_a = -log π(a|s), the sum over a's tokens, N = number of
  actions; with w_a an advantage this is the exact REINFORCE gradient of J with
  a per-state baseline (online SWiRL);
- ``"token"``: every action token counts alone, ℓ summed over tokens and N = number
  of action tokens (plain next-token SFT, the paper's baseline).

Because the sum runs over actions, a trajectory's K actions can be scored in one
forward pass or in K passes over its sub-trajectories with the same result, as long
as both use the same N; the trainer passes N for the whole global batch so that
gradient accumulation and data parallelism do not change the loss either.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

Reduction = Literal["action_mean", "action_sum", "token"]
REDUCTIONS: tuple[Reduction, ...] = ("action_mean", "action_sum", "token")


def token_nll(
    logits: torch.Tensor, labels: torch.Tensor, action_index: torch.Tensor
) -> torch.Tensor:
    """Negative log-likelihood of each label under ``logits``, in fp32; 0 where not trained.

    Args:
        logits: ``(..., V)`` next-token logits, already aligned with ``labels``.
        labels: ``(...)`` target ids; ignored where ``action_index`` is negative.
        action_index: ``(...)`` the action each target belongs to, -1 if none.

    Returns:
        ``(...)`` fp32 NLL; only the trained positions are passed through the
        softmax, so memory stays proportional to the number of action tokens.
    """
    trained = action_index >= 0
    nll = torch.zeros(labels.shape, dtype=torch.float32, device=logits.device)
    nll[trained] = F.cross_entropy(logits[trained].float(), labels[trained], reduction="none")
    return nll


def reduce_over_actions(
    values: torch.Tensor,
    action_index: torch.Tensor,
    weights: torch.Tensor,
    *,
    reduction: Reduction = "action_mean",
    normalizer: float | None = None,
) -> torch.Tensor:
    """Reduce per-token values to ``(1 / N) · Σ_a w_a · ℓ_a`` (see the module docstring).

    Args:
        values: ``(...)`` per-token values (NLL, or a KL estimate).
        action_index: ``(...)`` the action of each token (0..A-1), -1 for tokens not trained.
        weights: ``(A,)`` the weight of each action.
        reduction: ``"action_mean"``, ``"action_sum"`` or ``"token"``.
        normalizer: N; by default the number of actions that have tokens
            (``"action_*"``) or the number of action tokens (``"token"``) here.

    Returns:
        A scalar tensor.
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}.")
    if values.shape != action_index.shape:
        raise ValueError(
            f"values {tuple(values.shape)} and action_index {tuple(action_index.shape)} differ."
        )
    trained = action_index >= 0
    index = action_index[trained]
    if index.numel() and int(index.max()) >= weights.numel():
        raise ValueError(
            f"action_index refers to action {int(index.max())}, only {weights.numel()} weights."
        )
    token_values = values[trained].float()
    weights = weights.to(device=values.device, dtype=torch.float32)
    if reduction == "token":
        total = (weights[index] * token_values).sum()
        count = index.numel()
    else:
        sums = torch.zeros(weights.numel(), dtype=torch.float32, device=values.device)
        sums = sums.index_add(0, index, token_values)
        lengths = torch.bincount(index, minlength=weights.numel())
        present = lengths > 0
        per_action = sums[present]
        if reduction == "action_mean":
            per_action = per_action / lengths[present]
        total = (weights[present] * per_action).sum()
        count = int(present.sum())
    denominator = normalizer if normalizer is not None else max(count, 1)
    if denominator <= 0:
        raise ValueError(f"normalizer must be positive, got {denominator}.")
    return total / denominator


def stepwise_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    action_index: torch.Tensor,
    weights: torch.Tensor,
    *,
    reduction: Reduction = "action_mean",
    normalizer: float | None = None,
) -> torch.Tensor:
    """The step-wise loss ``(1 / N) · Σ_a w_a · ℓ_a`` with ℓ_a the action's NLL.

    With unit weights and ``"token"`` reduction this is SFT on the action tokens; with
    step rewards as weights it is offline SWiRL; with group-normalised advantages of
    sampled actions it is the online policy gradient.

    Args:
        logits: ``(..., V)`` logits aligned with ``labels`` (position t predicts ``labels[t]``).
        labels: ``(...)`` target ids.
        action_index: ``(...)`` which action each target token belongs to, -1 for
            tokens that are context (prompt, tool results, padding).
        weights: ``(A,)`` per-action weights.
        reduction: How an action's tokens are reduced (module docstring).
        normalizer: N, the number of actions (or action tokens) in the whole global
            batch; defaults to the count in this call.
    """
    nll = token_nll(logits, labels, action_index)
    return reduce_over_actions(
        nll, action_index, weights, reduction=reduction, normalizer=normalizer
    )


def kl_penalty(
    logprobs: torch.Tensor,
    reference_logprobs: torch.Tensor,
    action_index: torch.Tensor,
    *,
    reduction: Reduction = "action_mean",
    normalizer: float | None = None,
) -> torch.Tensor:
    """KL(π_θ || π_ref) on the action tokens, reduced like the loss (unit weights).

    Uses the per-token estimator exp(r) - r - 1 with r = log π_ref - log π_θ, which is
    non-negative and unbiased for samples drawn from π_θ (Schulman's "k3").

    Args:
        logprobs: ``(...)`` log-probabilities of the sampled tokens under the policy.
        reference_logprobs: ``(...)`` the same under the frozen start model.
        action_index: ``(...)`` as in ``stepwise_loss``.
        reduction: As in ``stepwise_loss``.
        normalizer: As in ``stepwise_loss``.
    """
    log_ratio = (reference_logprobs - logprobs).float()
    per_token = torch.exp(log_ratio) - log_ratio - 1
    num_actions = int(action_index.max()) + 1 if action_index.numel() else 0
    weights = torch.ones(max(num_actions, 0), device=logprobs.device)
    return reduce_over_actions(
        per_token, action_index, weights, reduction=reduction, normalizer=normalizer
    )


def group_advantages(rewards: torch.Tensor, *, eps: float = 1e-6) -> torch.Tensor:
    """Per-state group baseline: (r - mean_g r) / (std_g r + eps) over the G samples of a state.

    Args:
        rewards: ``(S, G)`` rewards of G sampled actions for each of S states.

    Returns:
        ``(S, G)`` advantages; a group whose samples all got the same reward gets 0
        (nothing to learn from it).
    """
    if rewards.dim() != 2:
        raise ValueError(f"rewards must be (states, samples), got shape {tuple(rewards.shape)}.")
    rewards = rewards.float()
    centred = rewards - rewards.mean(dim=1, keepdim=True)
    return centred / (rewards.std(dim=1, unbiased=False, keepdim=True) + eps)

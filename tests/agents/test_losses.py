"""The step-wise loss as a pure function, checked against values computed by hand."""

import math

import pytest

torch = pytest.importorskip("torch")

from swirl_agents.train.losses import (  # noqa: E402
    group_advantages,
    kl_penalty,
    reduce_over_actions,
    stepwise_loss,
    token_nll,
)

LOG3 = math.log(3.0)


def two_word_logits(rows):
    """Logits over a 2-token vocabulary: [0, ln 3] gives p(0) = 1/4, p(1) = 3/4."""
    return torch.tensor([[[0.0, LOG3] if r else [LOG3, 0.0] for r in row] for row in rows])


def test_uniform_logits_give_log_vocab_per_token_weighted_per_action():
    logits = torch.zeros(1, 4, 5)
    labels = torch.tensor([[1, 2, 3, 4]])
    action_index = torch.tensor([[0, 0, -1, 1]])  # action 0 has 2 tokens, action 1 has 1
    weights = torch.tensor([1.0, 2.0])
    log5 = math.log(5.0)
    mean = stepwise_loss(logits, labels, action_index, weights, reduction="action_mean")
    assert mean.item() == pytest.approx((1 * log5 + 2 * log5) / 2)
    total = stepwise_loss(logits, labels, action_index, weights, reduction="action_sum")
    assert total.item() == pytest.approx((1 * 2 * log5 + 2 * log5) / 2)
    token = stepwise_loss(logits, labels, action_index, weights, reduction="token")
    assert token.item() == pytest.approx((log5 + log5 + 2 * log5) / 3)


def test_hand_computed_probabilities_and_reductions():
    # Row 0: tokens predicted with p = 3/4, 1/4, 3/4; row 1: p = 1/4, 3/4.
    logits = two_word_logits([[1, 1, 1], [1, 1, 0]])
    labels = torch.tensor([[1, 0, 1], [0, 1, 0]])
    action_index = torch.tensor([[0, 0, 1], [2, 2, -1]])
    weights = torch.tensor([1.0, 0.5, -1.0])
    a, b = -math.log(3 / 4), -math.log(1 / 4)  # NLL of a likely and an unlikely token
    expected_nll = torch.tensor([[a, b, a], [b, a, 0.0]])
    assert torch.allclose(token_nll(logits, labels, action_index), expected_nll)
    per_action_mean = [(a + b) / 2, a, (b + a) / 2]
    expected = sum(w * nll for w, nll in zip([1.0, 0.5, -1.0], per_action_mean, strict=True)) / 3
    loss = stepwise_loss(logits, labels, action_index, weights)
    assert loss.item() == pytest.approx(expected)
    expected_token = (a + b + 0.5 * a - b - a) / 5
    loss = stepwise_loss(logits, labels, action_index, weights, reduction="token")
    assert loss.item() == pytest.approx(expected_token)


def test_normalizer_replaces_the_local_count():
    logits = two_word_logits([[1, 1]])
    labels = torch.tensor([[1, 1]])
    action_index = torch.tensor([[0, 1]])
    weights = torch.ones(2)
    local = stepwise_loss(logits, labels, action_index, weights)
    shared = stepwise_loss(logits, labels, action_index, weights, normalizer=8)
    assert shared.item() == pytest.approx(local.item() * 2 / 8)
    with pytest.raises(ValueError, match="normalizer"):
        stepwise_loss(logits, labels, action_index, weights, normalizer=0)


def test_context_tokens_and_missing_actions_do_not_count():
    logits = torch.randn(2, 3, 7)
    labels = torch.tensor([[1, -100, 2], [-100, -100, 3]])
    action_index = torch.tensor([[0, -1, 0], [-1, -1, 2]])  # action 1 has no tokens
    weights = torch.tensor([1.0, 100.0, 1.0])
    nll = token_nll(logits, labels, action_index)
    expected = ((nll[0, 0] + nll[0, 2]) / 2 + nll[1, 2]) / 2  # two actions present
    assert stepwise_loss(logits, labels, action_index, weights).item() == pytest.approx(
        expected.item()
    )


def test_gradient_of_one_token_is_weighted_softmax_minus_one_hot():
    logits = torch.tensor([[[0.5, -1.0, 2.0]]], requires_grad=True)
    labels = torch.tensor([[2]])
    loss = stepwise_loss(logits, labels, torch.tensor([[0]]), torch.tensor([3.0]), normalizer=2)
    loss.backward()
    expected = 3.0 / 2 * (torch.softmax(logits.detach(), -1) - torch.tensor([0.0, 0.0, 1.0]))
    assert torch.allclose(logits.grad, expected)


def test_bf16_logits_are_scored_in_float32():
    logits = torch.randn(1, 4, 11)
    labels = torch.tensor([[1, 2, 3, 4]])
    action_index = torch.tensor([[0, 0, 1, 1]])
    nll = token_nll(logits.bfloat16(), labels, action_index)
    assert nll.dtype == torch.float32
    assert torch.allclose(nll, token_nll(logits.bfloat16().float(), labels, action_index))


def test_kl_penalty_is_zero_for_equal_policies_and_matches_the_estimator():
    logprobs = torch.tensor([[-1.0, -2.0, -0.5]])
    action_index = torch.tensor([[0, 0, 1]])
    assert kl_penalty(logprobs, logprobs, action_index).item() == 0.0
    reference = torch.tensor([[-1.5, -2.0, 0.0]])
    r = [-0.5, 0.0, 0.5]
    k3 = [math.exp(x) - x - 1 for x in r]
    expected = ((k3[0] + k3[1]) / 2 + k3[2]) / 2
    assert kl_penalty(logprobs, reference, action_index).item() == pytest.approx(expected)
    assert all(value >= 0 for value in k3)


def test_group_advantages_normalise_within_each_state():
    rewards = torch.tensor([[1.0, 0.0, 0.0, 1.0], [0.5, 0.5, 0.5, 0.5], [1.0, 0.0, 0.0, 0.0]])
    advantages = group_advantages(rewards)
    assert torch.allclose(advantages[0], torch.tensor([1.0, -1.0, -1.0, 1.0]), atol=1e-5)
    assert torch.equal(advantages[1], torch.zeros(4))
    std = math.sqrt(0.75 * 0.25)
    assert advantages[2, 0].item() == pytest.approx(0.75 / std, rel=1e-5)
    assert advantages[2].sum().item() == pytest.approx(0.0, abs=1e-5)
    with pytest.raises(ValueError, match="states, samples"):
        group_advantages(torch.ones(4))


def test_bad_arguments_raise_clear_errors():
    values = torch.ones(1, 2)
    with pytest.raises(ValueError, match="reduction"):
        reduce_over_actions(
            values, torch.zeros(1, 2, dtype=torch.long), torch.ones(1), reduction="mean"
        )
    with pytest.raises(ValueError, match="differ"):
        reduce_over_actions(values, torch.zeros(1, 3, dtype=torch.long), torch.ones(1))
    with pytest.raises(ValueError, match="weights"):
        reduce_over_actions(values, torch.tensor([[0, 2]]), torch.ones(2))

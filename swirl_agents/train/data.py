"""Training data: tokenized trajectories with step weights, batches, and a resumable data order.

An offline example is one whole trajectory (all K actions trained in one pass, each
with its weight); an online example is built after sampling (a state plus one
sampled action). Both become a ``TrainExample`` and are batched the same way.

The data order is a stream of seeded permutations, one per epoch, and its state is
one integer (how many examples were consumed), so a resumed run reads exactly the
batches an uninterrupted run would have read.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from swirl_agents.decompose import tokenize_trajectory
from swirl_agents.encoding import PromptFormat, TokenizedTrajectory
from swirl_agents.trajectory import Trajectory


@dataclass(frozen=True)
class TrainExample:
    """A token sequence, the spans of its trained actions, and one weight per action.

    Attributes:
        tokens: Ids and action spans (``swirl_agents.encoding``).
        weights: The weight of each action span (step reward, advantage, or 1).
    """

    tokens: TokenizedTrajectory
    weights: tuple[float, ...]

    def __post_init__(self):
        if len(self.weights) != len(self.tokens.action_spans):
            raise ValueError(
                f"{len(self.weights)} weights for {len(self.tokens.action_spans)} actions."
            )

    @property
    def num_actions(self) -> int:
        """Actions that have at least one token (an empty action trains nothing)."""
        return sum(end > start for start, end in self.tokens.action_spans)

    @property
    def num_action_tokens(self) -> int:
        """Tokens inside the trained actions."""
        return sum(end - start for start, end in self.tokens.action_spans)


@dataclass
class Batch:
    """Padded tensors for one forward pass.

    Attributes:
        input_ids: ``(B, T)`` ids, right-padded.
        attention_mask: ``(B, T)`` 1 on real tokens.
        labels: ``(B, T)`` the next token at each position (shifted by one).
        action_index: ``(B, T)`` the action (0..A-1) the label belongs to, -1 if none.
        weights: ``(A,)`` the weight of each action in the batch.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor
    action_index: torch.Tensor
    weights: torch.Tensor

    def to(self, device: torch.device | str) -> Batch:
        """The same batch on ``device``."""
        return Batch(*(tensor.to(device) for tensor in vars(self).values()))

    @property
    def num_tokens(self) -> int:
        """Real (non-padding) tokens."""
        return int(self.attention_mask.sum())

    def trained_positions(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The positions where some row has a trained label, and the labels and action index there.

        Passed to the model as ``logits_to_keep``, they keep the LM head off the prompt
        and the tool results. With nothing to train, the last position is kept so the
        forward pass still has an output.

        Returns:
            ``keep`` ``(P,)``, and ``labels`` and ``action_index`` sliced to ``(B, P)``.
        """
        keep = (self.action_index >= 0).any(dim=0).nonzero().squeeze(1)
        if not keep.numel():
            keep = torch.tensor([self.input_ids.shape[1] - 1], device=self.input_ids.device)
        return keep, self.labels[:, keep], self.action_index[:, keep]


def collate(examples: Sequence[TrainExample], pad_id: int) -> Batch:
    """Right-pad examples into a ``Batch``; actions are numbered across the batch in order."""
    if not examples:
        raise ValueError("cannot collate an empty list of examples.")
    length = max(len(example.tokens.input_ids) for example in examples)
    shape = (len(examples), length)
    input_ids = torch.full(shape, pad_id, dtype=torch.long)
    attention_mask = torch.zeros(shape, dtype=torch.long)
    action_index = torch.full(shape, -1, dtype=torch.long)
    weights: list[float] = []
    for row, example in enumerate(examples):
        ids = example.tokens.input_ids
        input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        attention_mask[row, : len(ids)] = 1
        for (start, end), weight in zip(example.tokens.action_spans, example.weights, strict=True):
            # Position t predicts token t + 1, so token i is trained at position i - 1
            # (a first token at position 0 has nothing before it and is not trained).
            action_index[row, max(start - 1, 0) : end - 1] = len(weights)
            weights.append(weight)
    labels = torch.full(shape, -100, dtype=torch.long)
    labels[:, :-1] = input_ids[:, 1:]
    labels[action_index < 0] = -100
    return Batch(input_ids, attention_mask, labels, action_index, torch.tensor(weights))


def count_units(examples: Iterable[TrainExample], reduction: str) -> int:
    """N of the loss: actions with tokens, or action tokens for the ``token`` reduction."""
    if reduction == "token":
        return sum(example.num_action_tokens for example in examples)
    return sum(example.num_actions for example in examples)


def offline_examples(
    trajectories: Iterable[Trajectory],
    tokenizer,
    *,
    max_length: int,
    weighting: str = "judge",
    prompt_format: PromptFormat = "auto",
) -> list[TrainExample]:
    """Tokenize whole trajectories for one-pass step-wise training.

    Args:
        trajectories: Usually the filtered store.
        tokenizer: The model's tokenizer.
        max_length: Sequences end with the last action that fits whole (the context
            after it is never trained, so it is not fed either).
        weighting: ``"judge"`` weights each action by its process-judge score
            (``step_rewards``); ``"uniform"`` gives every action weight 1.
        prompt_format: The layout the policy sees (``swirl_agents.encoding``).

    Raises:
        ValueError: ``weighting`` is ``"judge"`` and a trajectory has no judgement for a
            step (naming the trajectory), or a trajectory has no action that fits.
    """
    examples = []
    for trajectory in trajectories:
        tokens = tokenize_trajectory(trajectory, tokenizer, prompt_format)
        weights = (
            step_rewards(trajectory) if weighting == "judge" else [1.0] * len(trajectory.steps)
        )
        kept = tokens.truncate(max_length)
        if not kept.action_spans:
            raise ValueError(
                f"trajectory {trajectory.key}: its first action ends after max_length "
                f"{max_length} tokens; raise max_length."
            )
        examples.append(TrainExample(kept, tuple(weights[: len(kept.action_spans)])))
    return examples


def step_rewards(trajectory: Trajectory) -> list[float]:
    """Each step's reward R(a_k|s_k): its process-judge score, 0 where the verdict was unreadable.

    Raises:
        ValueError: The trajectory carries no process judgements (naming it).
    """
    from swirl_agents.judges.trajectories import JudgedTrajectory

    judged = JudgedTrajectory.from_trajectory(trajectory, required=False)
    if judged.process is None:
        raise ValueError(
            f"episode {trajectory.key} has no process judgements; run `swirl judge --process` "
            "first, or train with weighting 'uniform'."
        )
    return [0.0 if score is None else float(score) for score in judged.step_scores]


class BatchSampler:
    """A seeded, endless stream of example indices, consumed one global batch at a time.

    Each epoch is a fresh permutation drawn from ``(seed, epoch)``; a batch may span two
    epochs. The whole state is ``consumed``, so resuming is exact.

    Args:
        num_examples: Size of the dataset.
        batch_size: Indices per global batch.
        seed: Seeds every epoch's permutation.
    """

    def __init__(self, num_examples: int, batch_size: int, seed: int):
        if num_examples < 1:
            raise ValueError("the training set is empty.")
        self.num_examples = num_examples
        self.batch_size = batch_size
        self.seed = seed
        self.consumed = 0
        self._cached: tuple[int, np.ndarray] = (-1, np.empty(0, dtype=np.int64))

    def next_batch(self) -> list[int]:
        """The next ``batch_size`` indices of the stream."""
        indices = []
        while len(indices) < self.batch_size:
            epoch, offset = divmod(self.consumed, self.num_examples)
            take = min(self.batch_size - len(indices), self.num_examples - offset)
            indices.extend(self._permutation(epoch)[offset : offset + take].tolist())
            self.consumed += take
        return indices

    @property
    def epoch(self) -> float:
        """Fractional epochs consumed so far."""
        return self.consumed / self.num_examples

    def state_dict(self) -> dict[str, int]:
        """What a checkpoint stores."""
        return {"consumed": self.consumed, "num_examples": self.num_examples}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue the stream where ``state`` left it; the dataset must be the same size."""
        if state["num_examples"] != self.num_examples:
            raise ValueError(
                f"the checkpoint was trained on {state['num_examples']} examples, "
                f"this dataset has {self.num_examples}."
            )
        self.consumed = int(state["consumed"])

    def _permutation(self, epoch: int) -> np.ndarray:
        if self._cached[0] != epoch:
            order = np.random.default_rng([self.seed, epoch]).permutation(self.num_examples)
            self._cached = (epoch, order)
        return self._cached[1]

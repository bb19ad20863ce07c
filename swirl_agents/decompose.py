"""Step-wise decomposition: a trajectory with K actions becomes K (state, action) examples.

SWiRL trains on sub-trajectories: the state s_k is everything before action k (the
prompt, every earlier action and the tool result it got) and a_k is action k. The
decomposition is exposed twice:

- as plain text (``decompose_trajectory`` -> ``SubTrajectory``), which is what a
  process judge reads and what the online trainer samples from;
- as token ids for a given tokenizer, with the span of every action
  (``tokenize_trajectory`` -> ``TokenizedTrajectory``).

Every state is a prefix of the transcript, so the K examples share their tokens: the
ids of (s_k, a_k) are exactly the first tokens of the full transcript's ids, and the
trainer can learn all K actions in one forward pass over the full transcript. The
encoding that makes this exact (segment by segment, in the layout ``HFPolicy`` shows
the model: ``"text"``, ``"chat"`` or ``"auto"``) is ``swirl_agents.encoding``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from swirl_agents.encoding import (
    PromptFormat,
    TokenizedTrajectory,
    resolve_prompt_format,
    state_ids,
    state_segments,
    tokenize_segments,
    transcript_segments,
)
from swirl_agents.trajectory import Trajectory


@dataclass(frozen=True)
class SubTrajectory:
    """One SWiRL example: the state before action ``step`` and that action.

    Attributes:
        task_id: The trajectory's task.
        sample: The trajectory's sample index.
        step: k, the 0-based index of the action.
        num_steps: K, the number of actions in the whole trajectory.
        question: The question (the chat layout shows it as its own message).
        prompt: The env's first observation (system prompt and question).
        history: ``(action, feedback)`` of every earlier step, in order.
        action: The action a_k.
    """

    task_id: str
    sample: int
    step: int
    num_steps: int
    question: str
    prompt: str
    history: tuple[tuple[str, str], ...]
    action: str

    @property
    def state(self) -> str:
        """The state s_k as text (equal to ``Trajectory.state(k)``)."""
        return self.prompt + "".join(action + feedback for action, feedback in self.history)


def decompose_trajectory(trajectory: Trajectory) -> list[SubTrajectory]:
    """Split a trajectory with K actions into its K sub-trajectories, in order."""
    pairs = tuple((step.action, step.feedback) for step in trajectory.steps)
    return [
        SubTrajectory(
            task_id=trajectory.task_id,
            sample=trajectory.sample,
            step=k,
            num_steps=len(pairs),
            question=trajectory.question,
            prompt=trajectory.prompt,
            history=pairs[:k],
            action=action,
        )
        for k, (action, _) in enumerate(pairs)
    ]


def tokenize_trajectory(
    trajectory: Trajectory, tokenizer: Any, prompt_format: PromptFormat = "text"
) -> TokenizedTrajectory:
    """Token ids of the whole transcript with one span per action (all K actions trained)."""
    steps = [(step.action, step.feedback) for step in trajectory.steps]
    layout = resolve_prompt_format(tokenizer, prompt_format)
    segments = transcript_segments(trajectory.prompt, trajectory.question, steps, tokenizer, layout)
    return tokenize_segments(segments, tokenizer, layout)


def tokenize_sub_trajectory(
    sub: SubTrajectory, tokenizer: Any, prompt_format: PromptFormat = "text"
) -> TokenizedTrajectory:
    """Token ids of (s_k, a_k) with one span, a_k's; a prefix of the full transcript's ids."""
    layout = resolve_prompt_format(tokenizer, prompt_format)
    state = state_segments(sub.prompt, sub.question, sub.history, tokenizer, layout)
    return tokenize_segments([*state, (sub.action, True)], tokenizer, layout)


def tokenize_state(
    sub: SubTrajectory, tokenizer: Any, prompt_format: PromptFormat = "text"
) -> list[int]:
    """Token ids of the state s_k alone: the prompt a policy continues with a new action."""
    return state_ids(sub.prompt, sub.question, sub.history, tokenizer, prompt_format)

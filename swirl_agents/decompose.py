"""Step-wise decomposition: a trajectory with K actions becomes K (state, action) examples.

SWiRL trains on sub-trajectories: the state s_k is everything before action k (the
prompt, every earlier action and the tool result it got) and a_k is action k. The
decomposition is exposed twice:

- as plain text (``decompose_trajectory`` -> ``SubTrajectory``), which is what a
  process judge reads and what the online trainer samples from;
- as token ids for a given tokenizer, with the span of every action
  (``tokenize_trajectory`` -> ``TokenizedTrajectory``).

Every state is a prefix of the transcript, so the K examples share their tokens.
That is exact only if the token ids are prefix-consistent as well, which a
tokenizer run over the whole transcript does not promise (a BPE merge may cross
the end of an action). So the transcript is encoded segment by segment (context,
action, context, action, ...), each without special tokens, and the tokenizer's
leading special tokens (a BOS) are put once in front. Then, for every k, the ids of
(s_k, a_k) are exactly the first tokens of the full transcript's ids, and the
trainer can learn all K actions in one forward pass over the full transcript.

The text is laid out the way ``HFPolicy`` shows it to the model:

- ``"text"``: the env's transcript itself (prompt, action, tool result, ...);
- ``"chat"``: the env's chat messages (``swirl_envs.transcript.transcript_messages``:
  system prompt, question, then assistant actions and user tool results) through the
  tokenizer's chat template; the context segments are the template's text between
  two actions;
- ``"auto"``: chat when the tokenizer has a chat template (the policy's default).

No end-of-sequence or end-of-turn token is trained after an action: a policy stops
generating at the action's closing tag (a stop string), so it never has to write one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from swirl_agents.trajectory import Trajectory
from swirl_envs.transcript import transcript_messages

PromptFormat = Literal["auto", "text", "chat"]
PROMPT_FORMATS: tuple[str, ...] = ("auto", "text", "chat")
Segment = tuple[str, bool]
"""A piece of the model's input text and whether it is an action (trained) or context."""


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


@dataclass(frozen=True)
class TokenizedTrajectory:
    """Token ids of a model input and where each trained action sits in them.

    Attributes:
        input_ids: The ids of the whole sequence, special tokens included.
        action_spans: ``(start, end)`` of each trained action's tokens in
            ``input_ids``, in order; an empty action has ``start == end``.
    """

    input_ids: tuple[int, ...]
    action_spans: tuple[tuple[int, int], ...]

    @property
    def action_mask(self) -> list[int]:
        """1 on every token of a trained action, 0 elsewhere."""
        mask = [0] * len(self.input_ids)
        for start, end in self.action_spans:
            mask[start:end] = [1] * (end - start)
        return mask

    def sub_trajectory(self, k: int) -> TokenizedTrajectory:
        """The ids of (s_k, a_k): the prefix up to the end of action k, with only a_k trained."""
        if not 0 <= k < len(self.action_spans):
            raise IndexError(f"action index {k} out of range for {len(self.action_spans)} actions")
        start, end = self.action_spans[k]
        return TokenizedTrajectory(self.input_ids[:end], ((start, end),))

    def truncate(self, max_length: int) -> TokenizedTrajectory:
        """Keep the longest prefix that ends an action within ``max_length`` tokens.

        Cutting inside an action would train a partial action, so the sequence ends
        with the last action that fits whole; actions after it are dropped.
        """
        spans = tuple(span for span in self.action_spans if span[1] <= max_length)
        end = spans[-1][1] if spans else 0
        return TokenizedTrajectory(self.input_ids[:end], spans)


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
    return tokenize_segments(
        [*_state_segments(sub, tokenizer, layout), (sub.action, True)], tokenizer, layout
    )


def tokenize_state(
    sub: SubTrajectory, tokenizer: Any, prompt_format: PromptFormat = "text"
) -> list[int]:
    """Token ids of the state s_k alone: the prompt a policy continues with a new action."""
    layout = resolve_prompt_format(tokenizer, prompt_format)
    return list(
        tokenize_segments(_state_segments(sub, tokenizer, layout), tokenizer, layout).input_ids
    )


def _state_segments(
    sub: SubTrajectory, tokenizer: Any, layout: Literal["text", "chat"]
) -> list[Segment]:
    """The state's segments, all context: earlier actions are not trained in (s_k, a_k)."""
    segments = transcript_segments(sub.prompt, sub.question, sub.history, tokenizer, layout)
    return [(text, False) for text, _ in segments]


def resolve_prompt_format(tokenizer: Any, prompt_format: PromptFormat) -> Literal["text", "chat"]:
    """``"text"`` or ``"chat"``: ``"auto"`` is chat when the tokenizer has a chat template."""
    if prompt_format not in PROMPT_FORMATS:
        raise ValueError(f"prompt_format must be one of {PROMPT_FORMATS}, got {prompt_format!r}.")
    has_template = bool(getattr(tokenizer, "chat_template", None))
    if prompt_format == "chat" and not has_template:
        raise ValueError("prompt_format 'chat' needs a tokenizer with a chat template.")
    if prompt_format == "auto":
        return "chat" if has_template else "text"
    return prompt_format


def transcript_segments(
    prompt: str,
    question: str,
    steps: Sequence[tuple[str, str]],
    tokenizer: Any = None,
    prompt_format: Literal["text", "chat"] = "text",
) -> list[Segment]:
    """The model's input as context and action segments: C_0, a_0, C_1, a_1, ..., a_{n-1}, C_n.

    C_k is the text between action k-1 and action k: the env's feedback in the text
    layout; in the chat layout, the template's end of the assistant turn, the tool
    result as a user turn, and the next assistant header. C_k depends on the steps
    before k only, which is what makes every state's segments a prefix of the full list.

    Args:
        prompt: The env's first observation.
        question: The question (chat layout only).
        steps: ``(action, feedback)`` pairs.
        tokenizer: Renders the chat template (chat layout only).
        prompt_format: ``"text"`` or ``"chat"``.

    Raises:
        ValueError: The chat template does not render a conversation as a prefix of
            its continuation (e.g. it drops earlier turns), so actions cannot share
            one pass.
    """
    if prompt_format == "text":
        segments: list[Segment] = [(prompt, False)]
        for action, feedback in steps:
            segments += [(action, True), (feedback, False)]
        return segments
    rendered = _render(tokenizer, transcript_messages(prompt, question, []))
    segments = [(rendered, False)]
    for k, (action, _) in enumerate(steps):
        following = _render(tokenizer, transcript_messages(prompt, question, steps[: k + 1]))
        if not following.startswith(rendered + action):
            raise ValueError(
                "the chat template does not render a conversation as a prefix of its "
                "continuation; use prompt_format 'text'."
            )
        segments += [(action, True), (following[len(rendered) + len(action) :], False)]
        rendered = following
    return segments


def _render(tokenizer: Any, messages: list[dict[str, str]]) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def tokenize_segments(
    segments: Sequence[Segment], tokenizer: Any, prompt_format: Literal["text", "chat"] = "text"
) -> TokenizedTrajectory:
    """Encode segments one by one and concatenate them, recording the action spans.

    Args:
        segments: ``(text, is_action)`` pairs in order.
        tokenizer: A Hugging Face tokenizer.
        prompt_format: ``"text"`` puts the tokenizer's leading special tokens (a BOS)
            in front, as ``tokenizer(text)`` would; ``"chat"`` adds none, since the
            template writes its own.

    Returns:
        The ids and a span for every segment flagged as an action.
    """
    ids = list(leading_special_ids(tokenizer)) if prompt_format == "text" else []
    spans = []
    texts = [text for text, _ in segments if text]
    encoded = iter(tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else [])
    for text, is_action in segments:
        start = len(ids)
        if text:
            ids.extend(next(encoded))
        if is_action:
            spans.append((start, len(ids)))
    return TokenizedTrajectory(tuple(ids), tuple(spans))


def leading_special_ids(tokenizer: Any) -> list[int]:
    """The special ids the tokenizer puts before a text (a BOS), found by encoding a probe.

    Trailing special tokens (an EOS some tokenizers append) are left out: they end
    a document, not a step, and a policy never writes one after an action.
    """
    probe = "probe"
    with_special = list(tokenizer(probe, add_special_tokens=True)["input_ids"])
    without = list(tokenizer(probe, add_special_tokens=False)["input_ids"])
    for start in range(len(with_special) - len(without) + 1):
        if with_special[start : start + len(without)] == without:
            return with_special[:start]
    raise ValueError(
        f"{type(tokenizer).__name__} encodes text differently with and without special "
        "tokens, so transcripts cannot be encoded segment by segment."
    )

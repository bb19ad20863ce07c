"""Prompt encoding: a transcript as a model reads it, in segments and in token ids.

One module for the policies (what a model is shown) and for training (what it learns
from), so both encode a transcript the same way and neither imports the other.

- Layout (``prompt_format``): ``"text"`` is the env's transcript itself; ``"chat"`` is
  the env's chat messages (``swirl_envs.transcript.transcript_messages``) through the
  tokenizer's chat template; ``"auto"`` is chat when the tokenizer has a template.
- Segments: the model's input as context and action pieces, ``C_0, a_0, C_1, ...``.
  ``C_k`` depends on the steps before k only, so every state's segments are a prefix of
  the whole transcript's.
- Token ids: each segment encoded on its own, without special tokens, after the
  tokenizer's leading special tokens (a BOS) once. A tokenizer run over the whole text
  does not promise prefix-consistent ids (a BPE merge may cross the end of an action);
  segment by segment, the ids of every state are exactly the first ids of the whole
  transcript, so training learns all K actions in one pass. In the text layout a policy
  encodes its prompts the same way (``SegmentCache``), so a token never spans an
  action's boundary at inference when it cannot in training. In the chat layout a
  policy's prompt is the rendered conversation encoded whole (``chat_prompt_ids``).

No end-of-sequence or end-of-turn token follows an action: a policy stops generating
at the action's closing tag (a stop string), so it never has to write one.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from swirl_envs.transcript import transcript_messages

PromptFormat = Literal["auto", "text", "chat"]
PROMPT_FORMATS: tuple[str, ...] = ("auto", "text", "chat")
Layout = Literal["text", "chat"]
"""A resolved prompt format (``"auto"`` decided)."""
Segment = tuple[str, bool]
"""A piece of the model's input text and whether it is an action (trained) or context."""
Step = tuple[str, str]
"""``(action, feedback)``: one action and the text the env appended after it."""


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


def resolve_prompt_format(tokenizer: Any, prompt_format: PromptFormat) -> Layout:
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
    steps: Sequence[Step],
    tokenizer: Any = None,
    prompt_format: Layout = "text",
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


def state_segments(
    prompt: str, question: str, steps: Sequence[Step], tokenizer: Any, prompt_format: Layout
) -> list[Segment]:
    """The segments of the state after ``steps``, all context (earlier actions are not trained)."""
    segments = transcript_segments(prompt, question, steps, tokenizer, prompt_format)
    return [(text, False) for text, _ in segments]


def state_ids(
    prompt: str,
    question: str,
    steps: Sequence[Step],
    tokenizer: Any,
    prompt_format: PromptFormat = "text",
) -> list[int]:
    """Token ids of the state after ``steps``: the prompt a policy continues with a new action."""
    layout = resolve_prompt_format(tokenizer, prompt_format)
    segments = state_segments(prompt, question, steps, tokenizer, layout)
    return list(tokenize_segments(segments, tokenizer, layout).input_ids)


def tokenize_segments(
    segments: Sequence[Segment], tokenizer: Any, prompt_format: Layout = "text"
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
    encoded = _encode_pieces(tokenizer, [text for text, _ in segments])
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

    Raises:
        ValueError: The tokenizer encodes a text differently with and without special
            tokens, so it cannot encode a transcript segment by segment.
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


def chat_prompt_ids(
    tokenizer: Any, conversations: Sequence[list[dict[str, str]]]
) -> list[list[int]]:
    """Each conversation through the chat template, ready for the next assistant turn, as ids.

    The rendered text is encoded whole (the template writes its own special tokens).
    """
    prompts = [_render(tokenizer, messages) for messages in conversations]
    return tokenizer(prompts, add_special_tokens=False)["input_ids"]


class SegmentCache:
    """Token ids of growing transcripts in the text layout, encoding only their new segments.

    A live episode's segments only grow from one call to the next, so the ids of the
    segments seen last time are kept (per episode key) and only the rest is encoded;
    the ids equal ``tokenize_segments`` over all of them. Only the episodes of the
    latest call are kept.

    Raises:
        ValueError: From ``leading_special_ids``, for a tokenizer that cannot encode
            segment by segment.
    """

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer
        self._leading = leading_special_ids(tokenizer)
        self._encoded: dict[Hashable, tuple[tuple[str, ...], list[int]]] = {}

    def encode(self, transcripts: Sequence[tuple[Hashable, tuple[str, ...]]]) -> list[list[int]]:
        """The ids of each ``(episode key, segments)``; all new segments in one tokenizer call."""
        pending = []
        for key, segments in transcripts:
            known, ids = self._encoded.get(key, ((), self._leading))
            if segments[: len(known)] != known:
                known, ids = (), self._leading
            pending.append((key, segments, len(known), ids))
        encoded = _encode_pieces(
            self.tokenizer, [text for _, segments, start, _ in pending for text in segments[start:]]
        )
        rows, self._encoded = [], {}
        for key, segments, start, ids in pending:
            row = list(ids)
            for text in segments[start:]:
                if text:
                    row.extend(next(encoded))
            self._encoded[key] = (segments, row)
            rows.append(row)
        return rows


def _encode_pieces(tokenizer: Any, texts: list[str]) -> Iterator[list[int]]:
    """The ids of each non-empty text, without special tokens, in one tokenizer call."""
    pieces = [text for text in texts if text]
    return iter(tokenizer(pieces, add_special_tokens=False)["input_ids"] if pieces else ())


def _render(tokenizer: Any, messages: list[dict[str, str]]) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

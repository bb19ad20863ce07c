"""Keys and values a batch of prompts can reuse instead of recomputing.

In a rollout, most of every prompt was already computed: an episode's transcript only
grows (state s_{k+1} = s_k + action_k + feedback_k), and every new episode starts
with the same system prompt. ``EpisodeKVCache`` keeps, per episode, the tokens of
the last prompt and generated action with their keys and values, and for rows that
start an episode computes the prefix they share once. A row then only runs the
tokens it has not seen.

Reuse is exact in tokens: the prompt is always tokenized from the full text, and
only the longest common token prefix with what was computed before is reused (a
token that merges differently at the old boundary is simply recomputed). The
reused values are the ones the model computed for the same tokens at the same
positions, so outputs match a recomputation up to floating-point rounding.

Rows are laid out as ``reused | padding | new tokens``: each row's reused tokens
sit at positions 0..c-1 of a ``StaticCache`` slot, padding (masked out) fills the
slot to the batch's longest reuse, and the new tokens are left-padded after it.
Position ids follow the attention mask, so every row sees the positions it would
see alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import DynamicCache, PreTrainedModel, StaticCache
from transformers.cache_utils import DynamicLayer, StaticLayer

MIN_SHARED_PREFIX = 16
"""Shortest common prefix of new episodes' prompts worth computing once for the batch."""


@dataclass
class SavedKV:
    """Tokens whose keys and values were computed, and those values (one tensor per layer).

    Attributes:
        tokens: The token ids, from position 0.
        keys: Per layer, ``(kv_heads, len(tokens), head_dim)``.
        values: Per layer, the same shape.
    """

    tokens: list[int]
    keys: list[torch.Tensor]
    values: list[torch.Tensor]

    def __len__(self) -> int:
        return len(self.tokens)


def supports_reuse(model: PreTrainedModel) -> bool:
    """True when the model's KV cache is plain full attention in every layer (no sliding window)."""
    try:
        dynamic = DynamicCache(config=model.config)
        static = StaticCache(config=model.config, max_cache_len=1)
    except (TypeError, ValueError, AttributeError):
        return False
    return all(type(layer) is DynamicLayer for layer in dynamic.layers) and all(
        type(layer) is StaticLayer for layer in static.layers
    )


def shared_prefix_length(rows: Sequence[Sequence[int]]) -> int:
    """Length of the token prefix common to every row, leaving each row at least one token."""
    limit = min(len(row) for row in rows) - 1
    first = rows[0]
    length = 0
    while length < limit and all(row[length] == first[length] for row in rows):
        length += 1
    return length


def common_length(saved: Sequence[int], row: Sequence[int]) -> int:
    """How many leading tokens of ``row`` equal ``saved``, leaving ``row`` at least one token."""
    limit = min(len(saved), len(row) - 1)
    length = 0
    while length < limit and saved[length] == row[length]:
        length += 1
    return length


def layout_rows(
    rows: Sequence[Sequence[int]], reused: Sequence[int], pad_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch rows as ``reused | padding | new tokens`` with their attention mask.

    With nothing reused this is plain left padding.
    """
    reused_width = max(reused)
    new_width = max(len(row) - count for row, count in zip(rows, reused, strict=True))
    ids, mask = [], []
    for row, count in zip(rows, reused, strict=True):
        gap = reused_width - count + new_width - (len(row) - count)
        ids.append([*row[:count], *[pad_id] * gap, *row[count:]])
        mask.append([1] * count + [0] * gap + [1] * (len(row) - count))
    return torch.tensor(ids, dtype=torch.long), torch.tensor(mask, dtype=torch.long)


class EpisodeKVCache:
    """Per-episode keys and values kept between calls of a policy.

    Episodes are identified by a key (the rollout's episode seed). Each call keeps
    only the episodes of that call, since the rollout passes every live episode to
    every call; an episode missing from a call has ended. Everything is forgotten
    when the model's weights change (a training step between two rollouts), which
    the parameters' in-place version counters reveal.

    Args:
        model: The model whose keys and values are kept.
        cache_argument: Name of the model's cache keyword (``cache`` or ``past_key_values``).
    """

    def __init__(self, model: PreTrainedModel, cache_argument: str):
        self.model = model
        self.cache_argument = cache_argument
        self.saved: dict[int, SavedKV] = {}
        self._weights_version = _weights_version(model)

    def clear(self) -> None:
        """Forget every episode."""
        self.saved.clear()

    def prepare(
        self, keys: Sequence[int], rows: Sequence[Sequence[int]], max_new_tokens: int, pad_id: int
    ) -> tuple[torch.Tensor, torch.Tensor, StaticCache]:
        """Lay out ``rows`` and return ``(input_ids, attention_mask, cache)`` for ``generate``.

        The cache already holds every row's reusable prefix; ``generate`` computes
        the rest.
        """
        version = _weights_version(self.model)
        if version != self._weights_version:
            self.saved, self._weights_version = {}, version
        sources = [self._episode_source(key, row) for key, row in zip(keys, rows, strict=True)]
        self._share_prefix(rows, sources)
        reused = [len(source[0]) if source else 0 for source in sources]
        input_ids, mask = layout_rows(rows, reused, pad_id)
        device = self.model.device
        cache = StaticCache(
            config=self.model.config, max_cache_len=input_ids.shape[1] + max_new_tokens
        )
        if max(reused):
            self._fill(cache, sources, max(reused))
        return input_ids.to(device), mask.to(device), cache

    def save(
        self,
        keys: Sequence[int],
        rows: Sequence[Sequence[int]],
        mask: torch.Tensor,
        new_tokens: torch.Tensor,
        cache: StaticCache,
        pad_id: int,
    ) -> None:
        """Keep each row's prompt and generated tokens with their keys and values."""
        width, generated = mask.shape[1], new_tokens.shape[1]
        saved: dict[int, SavedKV] = {}
        for index, (key, row) in enumerate(zip(keys, rows, strict=True)):
            produced = new_tokens[index].tolist()
            real = produced.index(pad_id) if pad_id in produced else generated
            # The last generated token is never fed back, so it has no keys or values.
            kept = min(real, generated - 1)
            slots = torch.cat(
                [
                    mask[index].nonzero().squeeze(1),
                    torch.arange(width, width + kept, device=mask.device),
                ]
            )
            saved[key] = SavedKV(
                tokens=[*row, *produced[:kept]],
                keys=[layer.keys[index][:, slots] for layer in cache.layers],  # copies
                values=[layer.values[index][:, slots] for layer in cache.layers],
            )
        self.saved = saved

    def _episode_source(self, key: int, row: Sequence[int]) -> tuple[list[int], SavedKV] | None:
        entry = self.saved.get(key)
        if entry is None:
            return None
        count = common_length(entry.tokens, row)
        return (list(row[:count]), entry) if count else None

    def _share_prefix(self, rows: Sequence[Sequence[int]], sources: list) -> None:
        """Compute once the prefix that the rows without reusable values share."""
        fresh = [index for index, source in enumerate(sources) if source is None]
        if len(fresh) < 2:
            return
        length = shared_prefix_length([rows[index] for index in fresh])
        if length < MIN_SHARED_PREFIX:
            return
        prefix = list(rows[fresh[0]][:length])
        computed = DynamicCache(config=self.model.config)
        ids = torch.tensor([prefix], device=self.model.device)
        self.model(input_ids=ids, use_cache=True, **{self.cache_argument: computed})
        shared = SavedKV(
            prefix,
            [layer.keys[0] for layer in computed.layers],
            [layer.values[0] for layer in computed.layers],
        )
        for index in fresh:
            sources[index] = (prefix, shared)

    def _fill(self, cache: StaticCache, sources: list, width: int) -> None:
        """Write each row's reused keys and values into slots 0.. of its cache row."""
        for layer_index in range(len(cache.layers)):
            keys = values = None
            for row, source in enumerate(sources):
                if source is None:
                    continue
                tokens, entry = source
                layer_keys, layer_values = entry.keys[layer_index], entry.values[layer_index]
                if keys is None:
                    heads, _, head_dim = layer_keys.shape
                    shape = (len(sources), heads, width, head_dim)
                    keys = layer_keys.new_zeros(shape)
                    values = layer_values.new_zeros((*shape[:3], layer_values.shape[-1]))
                keys[row, :, : len(tokens)] = layer_keys[:, : len(tokens)]
                values[row, :, : len(tokens)] = layer_values[:, : len(tokens)]
            cache.update(keys, values, layer_index)


def _weights_version(model: PreTrainedModel) -> int:
    """A number that changes whenever a parameter is modified in place (optimizer steps, loads)."""
    return sum(parameter._version for parameter in model.parameters())

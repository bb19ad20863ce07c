"""Keys and values a policy keeps between calls, so each row only runs the tokens it has not seen.

In a rollout, most of every prompt was already computed: an episode's transcript only
grows (state s_{k+1} = s_k + action_k + feedback_k), and every new episode starts
with the same system prompt. ``EpisodeKVCache`` keeps every live episode in its own
row (a slot) of one key/value tensor per layer, from one call to the next: the slot
holds the episode's tokens from position 0, so a call only writes the tokens the
slot lacks (the tool result and the next action) after them, in place. Nothing is
copied in or out between calls. A new episode takes a free slot and reuses what it
shares with the ended episode still in it, or gets the prefix new episodes share (the
system prompt) copied in, computed once.

Reuse is exact in tokens: only the longest common token prefix of a prompt with the
slot's tokens is reused (a token that merges differently at the old boundary is
simply recomputed). The reused values are the ones the model computed for the same
tokens at the same positions, so outputs match a recomputation up to floating-point
rounding.

A forward pass runs a list of slots (the live ones are kept in slots ``0..n-1``, so
the pass reads a view of the tensors) and writes each row's new tokens at its own
positions; a custom attention mask lets each query see exactly its row's tokens up
to its own position. Rows are left-padded to the longest new part; padding writes
past the row's end, where nothing attends to it and the next tokens overwrite it. A
pass costs its row count times its longest new part, so rows whose new part is far
longer than the batch's typical one (a new episode's question among rows that only
add a tool result) are computed ahead, on their own. On CPU, decoding steps read the
shared prefix once for all rows, not once per row (``slot_attention``), on models that
use ``sdpa``.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import DynamicCache, PreTrainedModel
from transformers.cache_utils import Cache, CacheLayerMixin, DynamicLayer

from swirl_agents.policies.slot_attention import SLOT_ATTENTION, SharedPrefix, use_slot_attention

MIN_SHARED_PREFIX = 16
"""Shortest common prefix of new episodes' prompts worth computing once for the batch."""

CAPACITY_STEP = 256
"""Slot length is allocated in multiples of this many tokens (growing copies every slot)."""

MASKS_SUPPORTED = ("sdpa", SLOT_ATTENTION, "eager")
"""Attention implementations given a custom 4D mask: boolean for sdpa, additive for eager."""


class ModelCall:
    """One forward pass of a causal LM over new tokens and a cache, giving the last logits.

    Args:
        model: A transformers causal LM.
    """

    def __init__(self, model: PreTrainedModel):
        self.model = model
        parameters = inspect.signature(model.forward).parameters
        self.cache_argument = "cache" if "cache" in parameters else "past_key_values"
        # Only the last position's logits are needed; the whole prompt's would cost
        # rows x tokens x vocabulary.
        self.options = {"logits_to_keep": 1} if "logits_to_keep" in parameters else {}

    def __call__(
        self,
        input_ids: torch.Tensor,
        mask: torch.Tensor,
        positions: torch.Tensor,
        cache: Cache,
        **attention: object,
    ) -> torch.Tensor:
        """Logits ``(rows, vocab)`` after ``input_ids``; ``mask``: 2D (cache and tokens) or 4D.

        ``attention`` goes to the model's attention function (``slot_attention``'s
        ``shared_prefix``).
        """
        output = self.model(
            input_ids=input_ids,
            attention_mask=mask,
            position_ids=positions,
            use_cache=True,
            **{self.cache_argument: cache},
            **self.options,
            **attention,
        )
        return output.logits[:, -1]


def supports_reuse(model: PreTrainedModel) -> bool:
    """True when every layer's cache is plain full attention and the attention takes a 4D mask."""
    if getattr(model.config, "_attn_implementation", None) not in MASKS_SUPPORTED:
        return False
    try:
        dynamic = DynamicCache(config=model.config)
    except (TypeError, ValueError, AttributeError):
        return False
    return all(type(layer) is DynamicLayer for layer in dynamic.layers)


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


def layout_rows(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad rows into one batch; returns the ids and the attention mask (1 on tokens)."""
    width = max(map(len, rows))
    ids = [[pad_id] * (width - len(row)) + list(row) for row in rows]
    mask = [[0] * (width - len(row)) + [1] * len(row) for row in rows]
    return torch.tensor(ids, dtype=torch.long), torch.tensor(mask, dtype=torch.long)


def mask_positions(mask: torch.Tensor) -> torch.Tensor:
    """Position ids that follow the attention mask: a row's n-th unmasked token is at n - 1."""
    return (mask.cumsum(1) - 1).clamp_(min=0)


class PaddedBatch:
    """Rows decoded without reuse: left-padded in a ``DynamicCache``, every token computed.

    Same interface as ``EpisodeKVCache``: ``start`` runs the prompts, ``advance``
    feeds the tokens of the rows still generating and drops the others, and
    ``rows`` says which row each logits row belongs to.

    Args:
        call: The model, called through ``ModelCall``.
        pad_id: The padding token.
    """

    def __init__(self, call: ModelCall, pad_id: int):
        self.call = call
        self.pad_id = pad_id
        self.rows: list[int] = []
        self.cache = DynamicCache(config=call.model.config)
        self.mask = torch.zeros((0, 0), dtype=torch.long)
        self.positions = torch.zeros((0, 0), dtype=torch.long)

    def start(self, rows: Sequence[Sequence[int]]) -> torch.Tensor:
        """Run every row's prompt; returns the last logits of each."""
        ids, mask = layout_rows(rows, self.pad_id)
        device = self.call.model.device
        self.mask, positions = mask.to(device), mask_positions(mask).to(device)
        self.positions = positions[:, -1:]
        self.rows = list(range(len(rows)))
        return self.call(ids.to(device), self.mask, positions, self.cache)

    def advance(self, tokens: Sequence[int], keep: Sequence[bool]) -> torch.Tensor:
        """Feed the kept rows their token, dropping the others; returns the kept rows' logits."""
        if not all(keep):
            kept = [index for index, flag in enumerate(keep) if flag]
            index = torch.tensor(kept, device=self.mask.device)
            for layer in self.cache.layers:
                layer.batch_select_indices(index)
            self.mask, self.positions = self.mask[index], self.positions[index]
            self.rows = [self.rows[i] for i in kept]
            tokens = [tokens[i] for i in kept]
        self.mask = torch.cat([self.mask, self.mask.new_ones((len(self.rows), 1))], 1)
        self.positions = self.positions + 1
        ids = torch.tensor(tokens, device=self.mask.device)[:, None]
        return self.call(ids, self.mask, self.positions, self.cache)


def visible(positions: torch.Tensor, width: int) -> torch.Tensor:
    """Which of a slot's first ``width`` positions each query sees: ``(rows, 1, queries, width)``.

    A query at position p sees its row's positions 0..p, which hold the row's own
    tokens only (a slot keeps one episode's tokens from position 0).
    """
    columns = torch.arange(width, device=positions.device)
    return (columns <= positions[:, :, None])[:, None]


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


class _SlotLayer(CacheLayerMixin):
    """One layer's keys and values: ``(slots, kv_heads, capacity, head_dim)`` (``_SlotCache``)."""

    is_sliding = False

    def __init__(self, owner: _SlotCache):
        super().__init__()
        self.owner = owner

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        slots, capacity = self.owner.shape
        heads = key_states.shape[1]
        self.keys = key_states.new_zeros((slots, heads, capacity, key_states.shape[-1]))
        self.values = value_states.new_zeros((slots, heads, capacity, value_states.shape[-1]))
        self.is_initialized = True

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Write the new keys and values at the rows' positions; return the rows' first columns."""
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        rows, positions, width = self.owner.rows, self.owner.positions, self.owner.width
        self.keys[rows[:, None], :, positions] = key_states.transpose(1, 2)
        self.values[rows[:, None], :, positions] = value_states.transpose(1, 2)
        if self.owner.leading:  # slots 0..n-1: a view, nothing copied
            count = len(rows)
            return self.keys[:count, :, :width], self.values[:count, :, :width]
        return self.keys[rows, :, :width], self.values[rows, :, :width]

    def resize(self, slots: int, capacity: int) -> None:
        """Grow to ``slots`` x ``capacity``, keeping what is stored."""
        if not self.is_initialized:
            return
        old_slots, _, old_capacity, _ = self.keys.shape
        for name in ("keys", "values"):
            old = getattr(self, name)
            new = old.new_zeros((slots, old.shape[1], capacity, old.shape[3]))
            new[:old_slots, :, :old_capacity] = old
            setattr(self, name, new)

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.owner.width, 0

    def get_seq_length(self) -> int:
        return self.owner.width

    def get_max_length(self) -> int:
        return self.owner.shape[1]


class _SlotCache(Cache):
    """The model's cache during a pass over some slots: where each row's new tokens go.

    ``rows`` are the slots of the pass, ``positions`` the column of each new token
    of each row, ``width`` how many leading columns the attention reads.
    """

    def __init__(self, num_layers: int):
        super().__init__(layers=[_SlotLayer(self) for _ in range(num_layers)])
        self.shape = (0, 0)
        self.rows = torch.zeros(0, dtype=torch.long)
        self.positions = torch.zeros((0, 0), dtype=torch.long)
        self.width = 0
        self.leading = True

    def reserve(self, slots: int, capacity: int) -> None:
        """Make room for at least ``slots`` slots of ``capacity`` tokens."""
        old_slots, old_capacity = self.shape
        if slots <= old_slots and capacity <= old_capacity:
            return
        slots = max(slots, old_slots)
        capacity = max(capacity, old_capacity)
        capacity = -(-capacity // CAPACITY_STEP) * CAPACITY_STEP
        for layer in self.layers:
            layer.resize(slots, capacity)
        self.shape = (slots, capacity)

    def copy(self, source: int | SavedKV, target: int, count: int) -> None:
        """Copy the first ``count`` positions of a slot or saved values into slot ``target``."""
        for index, layer in enumerate(self.layers):
            if not layer.is_initialized:
                return
            if isinstance(source, SavedKV):
                keys, values = source.keys[index], source.values[index]
            else:
                keys, values = layer.keys[source], layer.values[source]
            layer.keys[target, :, :count] = keys[:, :count]
            layer.values[target, :, :count] = values[:, :count]

    def swap(self, first: int, second: int, count: int) -> None:
        """Exchange the first ``count`` positions of two slots."""
        for layer in self.layers:
            if layer.is_initialized:
                for stored in (layer.keys, layer.values):
                    held = stored[first, :, :count].clone()
                    stored[first, :, :count] = stored[second, :, :count]
                    stored[second, :, :count] = held

    def save(self, slot: int, tokens: list[int]) -> SavedKV:
        """A copy of the slot's values for its first ``len(tokens)`` positions."""
        count = len(tokens)
        return SavedKV(
            tokens=list(tokens),
            keys=[layer.keys[slot, :, :count].clone() for layer in self.layers],
            values=[layer.values[slot, :, :count].clone() for layer in self.layers],
        )


class EpisodeKVCache:
    """Per-episode keys and values kept between calls of a policy, one slot per live episode.

    Episodes are identified by a key (the rollout's episode seed). Each call keeps
    only the episodes of that call, since the rollout passes every live episode to
    every call; an episode missing from a call has ended and frees its slot.
    Everything is forgotten when the model's weights change (a training step between
    two rollouts), which the parameters' in-place version counters reveal.

    Args:
        call: The model, called through ``ModelCall``.
    """

    def __init__(self, call: ModelCall):
        self.call = call
        self.model = call.model
        self.cache = _SlotCache(self.model.config.num_hidden_layers)
        self.tokens: list[list[int]] = []
        """Per slot, the tokens whose keys and values it holds (from position 0)."""
        self.slot_of: dict[int, int] = {}
        """The slot of each live episode."""
        self.prefix: SavedKV | None = None
        self.rows: list[int] = []
        """During a call: the row (index in the call) in each slot of the batch, in slot order."""
        self._pad_id = 0
        self._reserve = 0
        self._weights_version = _weights_version(self.model)
        self._eager = self.model.config._attn_implementation == "eager"
        # On CPU a decoding step is bound by reading keys and values from memory, so
        # reading the shared prefix once pays; on GPU sdpa's fused kernel is kept.
        self._cascade = self.model.device.type == "cpu" and use_slot_attention(self.model)
        self._shared = 0
        """During a call: how many leading positions every row shares with ``prefix``."""

    def clear(self) -> None:
        """Forget every episode and the shared prefix."""
        self.slot_of.clear()
        self.tokens = [[] for _ in self.tokens]
        self.prefix = None

    def episode_tokens(self, key: int) -> list[int]:
        """The tokens whose keys and values are kept for an episode (empty when none)."""
        slot = self.slot_of.get(key)
        return self.tokens[slot] if slot is not None else []

    def start(
        self, keys: Sequence[int], rows: Sequence[Sequence[int]], max_new_tokens: int, pad_id: int
    ) -> torch.Tensor:
        """Put ``rows`` in slots ``0..len(rows)-1`` and run what they lack; returns the last logits.

        The logits are in slot order: ``self.rows[i]`` is the row in slot i.
        """
        version = _weights_version(self.model)
        if version != self._weights_version:
            self.clear()
            self._weights_version = version
        self._pad_id, self._reserve = pad_id, max_new_tokens
        self.cache.reserve(len(rows), max(map(len, rows)) + max_new_tokens)
        slots = self._assign(keys)
        self.rows = [0] * len(rows)
        for index, slot in enumerate(slots):
            self.rows[slot] = index
        counts = [
            common_length(self.tokens[slot], row) for slot, row in zip(slots, rows, strict=True)
        ]
        for slot, count in zip(slots, counts, strict=True):
            del self.tokens[slot][count:]
        self._shared = 0
        self._share_prefix(rows, slots, counts)
        self._catch_up(rows, slots, counts)
        self._shared = self._prefix_length(slots)
        return self.run(range(len(rows)), [rows[index][counts[index] :] for index in self.rows])

    def advance(self, tokens: Sequence[int], keep: Sequence[bool]) -> torch.Tensor:
        """Feed each kept slot its token; stopped slots move after the kept ones and are not run.

        ``tokens`` and ``keep`` are in the current slot order; returns the logits of
        the kept slots in their new order (``self.rows``).
        """
        fed = dict(zip(self.rows, tokens, strict=True))
        last = len(self.rows) - 1
        for slot in reversed(range(len(keep))):
            if not keep[slot]:
                if slot != last:
                    self._swap(slot, last)
                last -= 1
        self.rows = self.rows[: last + 1]
        return self.run(range(len(self.rows)), [[fed[row]] for row in self.rows])

    def run(self, slots: Sequence[int], new: Sequence[Sequence[int]]) -> torch.Tensor:
        """Append ``new[i]`` to slot ``slots[i]`` in one forward pass; returns each last logits."""
        lengths = [len(self.tokens[slot]) for slot in slots]
        width = max(map(len, new))
        self.cache.reserve(max(slots) + 1, max(lengths) + width + self._reserve)
        ids, positions = [], []
        for length, tokens in zip(lengths, new, strict=True):
            gap = width - len(tokens)
            ids.append([self._pad_id] * gap + list(tokens))
            # Padding goes after the row's new tokens, where nothing attends to it.
            end = length + len(tokens)
            positions.append([*range(end, length + width), *range(length, end)])
        device = self.model.device
        positions_t = torch.tensor(positions, device=device)
        cache = self.cache
        cache.rows = torch.tensor(list(slots), device=device)
        cache.positions = positions_t
        cache.width = max(lengths) + width
        cache.leading = list(slots) == list(range(len(slots)))
        allowed = visible(positions_t, cache.width)
        for slot, tokens in zip(slots, new, strict=True):
            self.tokens[slot].extend(tokens)
        attention = {}
        if self._shared:
            prefix = self.prefix
            attention["shared_prefix"] = SharedPrefix(prefix.keys, prefix.values, self._shared)
        input_ids = torch.tensor(ids, device=device)
        return self.call(input_ids, self._mask(allowed), positions_t, cache, **attention)

    def _prefix_length(self, slots: Sequence[int]) -> int:
        """Leading tokens all ``slots`` share with ``prefix``; 0 below ``MIN_SHARED_PREFIX``.

        Decoding reads those positions once for all rows, from ``prefix`` (``slot_attention``).
        """
        if not self._cascade or self.prefix is None:
            return 0
        saved = self.prefix.tokens
        length = len(saved)
        for slot in slots:
            tokens = self.tokens[slot]
            if tokens[:length] != saved[:length]:
                length = common_length(saved[:length], tokens)
        return length if length >= MIN_SHARED_PREFIX else 0

    def _mask(self, allowed: torch.Tensor) -> torch.Tensor:
        if not self._eager:
            return allowed
        dtype = self.model.dtype
        return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill_(
            ~allowed, torch.finfo(dtype).min
        )

    def _assign(self, keys: Sequence[int]) -> list[int]:
        """Slots for this call's episodes: the live ones keep theirs, moved into ``0..n-1``."""
        live = set(keys)
        self.slot_of = {key: slot for key, slot in self.slot_of.items() if key in live}
        count = len(keys)
        while len(self.tokens) < count:
            self.tokens.append([])
        used = set(self.slot_of.values())
        free = [slot for slot in range(count) if slot not in used]
        # A key passed twice (the same episode in two rows) gets a slot of its own that
        # is not kept: only the first row is remembered.
        slots = [-1] * count
        for key, slot in list(self.slot_of.items()):
            if slot >= count:
                target = free.pop(0)
                self.cache.copy(slot, target, len(self.tokens[slot]))
                self.tokens[target] = self.tokens[slot]
                self.slot_of[key] = target
        # A free slot keeps its ended episode's tokens: a new episode reuses what it
        # shares with them (the system prompt, or more for another sample of a question).
        seen = set()
        for index, key in enumerate(keys):
            if key in seen:
                slots[index] = free.pop(0)
                continue
            seen.add(key)
            if key not in self.slot_of:
                self.slot_of[key] = free.pop(0)
            slots[index] = self.slot_of[key]
        del self.tokens[count:]
        return slots

    def _swap(self, first: int, second: int) -> None:
        count = max(len(self.tokens[first]), len(self.tokens[second]))
        self.cache.swap(first, second, count)
        self.tokens[first], self.tokens[second] = self.tokens[second], self.tokens[first]
        self.rows[first], self.rows[second] = self.rows[second], self.rows[first]
        for key, slot in self.slot_of.items():
            if slot in (first, second):
                self.slot_of[key] = second if slot == first else first

    def _share_prefix(self, rows: Sequence[Sequence[int]], slots: list[int], counts: list[int]):
        """Give rows with nothing of their own the prefix new episodes share.

        The prefix kept from earlier calls or a live episode's values serve when they
        match; otherwise the prefix the remaining rows share is computed once.
        """
        fresh = [index for index, count in enumerate(counts) if count == 0]
        if not fresh:
            return
        live = next((slots[i] for i, count in enumerate(counts) if count), None)
        known: list[int | SavedKV] = [s for s in (self.prefix, live) if s is not None]
        for index in fresh:
            count, source = max(
                ((common_length(self._source_tokens(s), rows[index]), s) for s in known),
                default=(0, None),
                key=lambda pair: pair[0],
            )
            if count >= MIN_SHARED_PREFIX:
                self._give(slots[index], source, count, rows[index])
                counts[index] = count
        fresh = [index for index in fresh if counts[index] == 0]
        if len(fresh) < 2:
            return
        length = shared_prefix_length([rows[index] for index in fresh])
        if length < MIN_SHARED_PREFIX:
            return
        first = slots[fresh[0]]
        self.tokens[first] = []
        self.run([first], [rows[fresh[0]][:length]])
        self.prefix = self.cache.save(first, self.tokens[first])
        for index in fresh:
            if slots[index] != first:
                self._give(slots[index], self.prefix, length, rows[index])
            counts[index] = length

    def _source_tokens(self, source: int | SavedKV) -> list[int]:
        return source.tokens if isinstance(source, SavedKV) else self.tokens[source]

    def _give(self, slot: int, source: int | SavedKV, count: int, row: Sequence[int]) -> None:
        self.cache.reserve(slot + 1, count + self._reserve)
        self.cache.copy(source, slot, count)
        self.tokens[slot] = list(row[:count])

    def _catch_up(self, rows: Sequence[Sequence[int]], slots: list[int], counts: list[int]):
        """Compute ahead the rows whose new part is over twice the batch's median one.

        They run on their own up to the median's length from their end, so the
        batch runs only about the median new length for every row.
        """
        new = [len(row) - count for row, count in zip(rows, counts, strict=True)]
        typical = sorted(new)[len(new) // 2]
        long = [index for index, count in enumerate(new) if count > 2 * typical]
        if not long:
            return
        ahead = [rows[index][counts[index] : len(rows[index]) - typical] for index in long]
        self.run([slots[index] for index in long], ahead)
        for index in long:
            counts[index] = len(rows[index]) - typical


def _weights_version(model: PreTrainedModel) -> int:
    """A number that changes whenever a parameter is modified in place (optimizer steps, loads)."""
    return sum(parameter._version for parameter in model.parameters())

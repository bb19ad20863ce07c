"""Decoding attention that reads the prompt prefix all rows share once, not once per row.

In a batched rollout every episode starts with the same system prompt, and each slot
of the ``EpisodeKVCache`` holds a copy of that prefix's keys and values. A decoding
step is bound by reading every row's keys and values from memory, so reading the
prefix once for the whole batch saves its length times the row count (cascade
attention): the prefix's scores are one matrix product for all rows' queries, the
rows' own columns are one batched product, and one softmax spans both.

The function is registered with transformers' ``AttentionInterface`` under
``SLOT_ATTENTION``. It only departs from ``sdpa`` when the slot cache passes a
``shared_prefix`` and the pass decodes one token per row for several rows; every
other call (prompts, a single row, training, ``generate``) is plain ``sdpa``, with
``sdpa``'s masks, so a model switched to it behaves as before everywhere else.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from transformers import AttentionInterface, PreTrainedModel
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

SLOT_ATTENTION = "swirl_slot_sdpa"
"""The registered name; models on ``sdpa`` are switched to it by ``use_slot_attention``."""


class SharedPrefix(NamedTuple):
    """The keys and values every row of a pass holds in its first ``length`` positions.

    Attributes:
        keys: Per layer, ``(kv_heads, >= length, head_dim)``.
        values: Per layer, the same shape.
        length: How many leading positions every row shares.
    """

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    length: int


def slot_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    shared_prefix: SharedPrefix | None = None,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """``sdpa``, except one-token decoding over several rows with a ``shared_prefix``.

    ``query`` is ``(rows, heads, 1, head_dim)``; ``key`` and ``value`` are the rows'
    slots, ``(rows, kv_heads, width, head_dim)``, whose first ``shared_prefix.length``
    columns hold copies of the prefix; ``attention_mask`` is the boolean
    ``(rows, 1, 1, width)`` mask of the slot cache. Returns ``(rows, 1, heads, head_dim)``.
    """
    rows, heads, queries, head_dim = query.shape
    plain = shared_prefix is None or shared_prefix.length == 0 or queries != 1 or rows == 1
    if plain or kwargs.get("position_bias") is not None:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    length = shared_prefix.length
    kv_heads = key.shape[1]
    group = heads // kv_heads
    scale = scaling if scaling is not None else head_dim**-0.5
    layer = module.layer_idx
    prefix_keys = shared_prefix.keys[layer][:, :length]
    prefix_values = shared_prefix.values[layer][:, :length]
    # Each kv head's queries: (rows, kv_heads, group, head_dim).
    grouped = query.view(rows, kv_heads, group, head_dim)
    # The prefix for every row at once: (kv_heads, rows * group, length).
    stacked = grouped.transpose(0, 1).reshape(kv_heads, rows * group, head_dim)
    prefix_scores = torch.matmul(stacked, prefix_keys.transpose(1, 2)) * scale
    prefix_scores = prefix_scores.view(kv_heads, rows, group, length).transpose(0, 1)
    # Each row's own columns: (rows, kv_heads, group, width - length).
    own_keys, own_values = key[:, :, length:], value[:, :, length:]
    own_scores = torch.matmul(grouped, own_keys.transpose(2, 3)) * scale
    own_scores = own_scores.masked_fill(~attention_mask[:, :, :, length:], float("-inf"))
    weights = torch.cat([prefix_scores, own_scores], dim=-1).softmax(-1, dtype=torch.float32)
    weights = weights.to(query.dtype)
    prefix_weights = weights[..., :length].transpose(0, 1).reshape(kv_heads, rows * group, length)
    prefix_out = torch.matmul(prefix_weights, prefix_values).view(kv_heads, rows, group, head_dim)
    output = prefix_out.transpose(0, 1) + torch.matmul(weights[..., length:], own_values)
    return output.reshape(rows, 1, heads, head_dim), None


def use_slot_attention(model: PreTrainedModel) -> bool:
    """Switch a model on ``sdpa`` to ``slot_attention``; True when it now uses it."""
    implementation = getattr(model.config, "_attn_implementation", None)
    if implementation == SLOT_ATTENTION:
        return True
    if implementation != "sdpa":
        return False
    AttentionInterface.register(SLOT_ATTENTION, slot_attention)
    AttentionMaskInterface.register(SLOT_ATTENTION, sdpa_mask)
    try:
        model.set_attn_implementation(SLOT_ATTENTION)
    except (ValueError, KeyError, AttributeError):
        return False
    return model.config._attn_implementation == SLOT_ATTENTION

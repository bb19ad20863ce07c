"""A Hugging Face causal-LM policy: batched, left-padded ``generate`` that stops at the end of a call.

Every live episode of a rollout round is one row of one ``generate`` call. The
prompt is the env's transcript (``prompt_format="text"``) or its chat messages
through the tokenizer's chat template (``"chat"``); ``"auto"`` picks chat when the
tokenizer has a template. Generation stops for a row as soon as it closes a tool
call or an answer (transformers' stop strings), and anything decoded past the
closing tag is cut.

Sampling is per episode, not per batch: each row draws its token from its own
``torch.Generator`` seeded by ``step_seed(observation.seed, step)``, by the
Gumbel-max trick (``argmax(logits / T + Gumbel noise)`` is an exact sample of the
softmax at temperature T, after top-p filtering). A row's random draws therefore
do not depend on which other episodes share its batch, so an episode samples the
same action in any batch, up to floating-point differences in the logits between
batch shapes (exact on CPU in float32 for the tiny model in our tests; not
guaranteed in bfloat16 on CUDA).
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Sequence
from typing import Any, Literal

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    DynamicCache,
    GenerationConfig,
    LogitsProcessor,
    LogitsProcessorList,
    PreTrainedModel,
    StaticCache,
    TemperatureLogitsWarper,
    TopPLogitsWarper,
)
from transformers.cache_utils import DynamicLayer, StaticLayer

from swirl_agents.policies.base import (
    Observation,
    PolicyStats,
    SamplingSettings,
    cut_at_stop,
    step_seed,
)

PromptFormat = Literal["auto", "text", "chat"]
MIN_SHARED_PREFIX = 16
"""Shortest common token prefix worth computing once for a whole batch."""


class HFPolicy:
    """A local causal LM as a policy.

    Args:
        model: A transformers causal LM (already on its device).
        tokenizer: Its tokenizer; padding is forced to the left for batching.
        sampling: Temperature (0 for greedy), top-p, max new tokens and stop strings.
        prompt_format: ``"text"`` (the transcript), ``"chat"`` (the messages through
            the chat template) or ``"auto"`` (chat when the tokenizer has a template).
        prefix_cache: Compute the prompt prefix that every row of a batch shares (the
            system prompt) once, in a static KV cache, instead of once per row. Used
            only where the model's cache is the plain full-attention kind.
        name: Shown in stored trajectories; defaults to the model's path.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: Any,
        *,
        sampling: SamplingSettings | None = None,
        prompt_format: PromptFormat = "auto",
        prefix_cache: bool = True,
        name: str | None = None,
    ):
        if prompt_format not in ("auto", "text", "chat"):
            raise ValueError(f"prompt_format must be auto, text or chat, got {prompt_format!r}.")
        has_template = bool(getattr(tokenizer, "chat_template", None))
        if prompt_format == "chat" and not has_template:
            raise ValueError("prompt_format='chat' needs a tokenizer with a chat template.")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.sampling = sampling or SamplingSettings()
        self.chat = prompt_format == "chat" or (prompt_format == "auto" and has_template)
        self.name = name or getattr(model.config, "_name_or_path", "") or type(model).__name__
        self.prefix_cache = prefix_cache and _has_plain_cache(model)
        parameters = inspect.signature(model.forward).parameters
        self._cache_argument = "cache" if "cache" in parameters else "past_key_values"
        self.stats = PolicyStats()

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str,
        *,
        device: str | None = None,
        dtype: str | torch.dtype | None = None,
        **kwargs: Any,
    ) -> HFPolicy:
        """Load a model and tokenizer (local path or hub name) and wrap them.

        Args:
            name_or_path: Anything ``AutoModelForCausalLM.from_pretrained`` accepts.
            device: ``"cuda"``, ``"cpu"``, ...; CUDA when available by default.
            dtype: Weights' dtype; bfloat16 on CUDA and float32 on CPU by default.
            **kwargs: ``HFPolicy`` settings (``sampling``, ``prompt_format``, ``name``).
        """
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if dtype is None:
            dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        elif isinstance(dtype, str):
            dtype = getattr(torch, dtype)
        tokenizer = AutoTokenizer.from_pretrained(name_or_path)
        model = AutoModelForCausalLM.from_pretrained(name_or_path, dtype=dtype).to(device)
        kwargs.setdefault("name", name_or_path)
        return cls(model, tokenizer, **kwargs)

    def settings(self) -> dict[str, Any]:
        """Sampling settings and prompt format, stored with each trajectory."""
        return {
            "temperature": self.sampling.temperature,
            "top_p": self.sampling.top_p,
            "max_new_tokens": self.sampling.max_new_tokens,
            "stop": list(self.sampling.stop),
            "prompt_format": "chat" if self.chat else "text",
            "prefix_cache": self.prefix_cache,
            "dtype": str(self.model.dtype).removeprefix("torch."),
            "device": str(self.model.device),
        }

    @torch.inference_mode()
    def act(self, observations: Sequence[Observation]) -> list[str]:
        """Generate one action per observation in a single batched ``generate`` call."""
        if not observations:
            return []
        started = time.perf_counter()
        rows = self._tokenize(observations)
        stop = self.sampling.stop_strings(observations)
        prefix = shared_prefix_length(rows) if self.prefix_cache and len(rows) > 1 else 0
        if prefix < MIN_SHARED_PREFIX:
            prefix = 0
        input_ids, attention_mask = layout_rows(rows, prefix, self.tokenizer.pad_token_id)
        input_ids = input_ids.to(self.model.device)
        attention_mask = attention_mask.to(self.model.device)
        cache = {}
        if prefix:
            total = input_ids.shape[1] + self.sampling.max_new_tokens
            cache[self._cache_argument] = self._prefilled_cache(input_ids[:1, :prefix], len(rows), total)
        output = self.model.generate(
            input_ids=input_ids,
            attention_mask=attention_mask,
            generation_config=self._generation_config(stop),
            logits_processor=self._sampler(observations),
            tokenizer=self.tokenizer if stop else None,
            **cache,
        )
        new_tokens = output[:, input_ids.shape[1] :]
        texts = self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        generated = int((new_tokens != self.tokenizer.pad_token_id).sum())
        self.stats.record(started, len(rows), sum(map(len, rows)), generated)
        return [cut_at_stop(text, stop) for text in texts]

    def _tokenize(self, observations: Sequence[Observation]) -> list[list[int]]:
        if self.chat:
            prompts = [
                self.tokenizer.apply_chat_template(
                    o.messages, tokenize=False, add_generation_prompt=True
                )
                for o in observations
            ]
            # The template writes the special tokens itself.
            return self.tokenizer(prompts, add_special_tokens=False)["input_ids"]
        return self.tokenizer([o.text for o in observations])["input_ids"]

    def _prefilled_cache(self, prefix: torch.Tensor, batch: int, length: int) -> StaticCache:
        """A static KV cache for ``batch`` rows whose first positions hold ``prefix``, computed once."""
        shared = DynamicCache(config=self.model.config)
        self.model(input_ids=prefix, use_cache=True, **{self._cache_argument: shared})
        cache = StaticCache(config=self.model.config, max_cache_len=length)
        for index, layer in enumerate(shared.layers):
            keys = layer.keys.expand(batch, -1, -1, -1)
            values = layer.values.expand(batch, -1, -1, -1)
            cache.update(keys, values, index)
        return cache

    def _generation_config(self, stop: list[str]) -> GenerationConfig:
        # Built from scratch so that a checkpoint's own defaults (top_k, repetition
        # penalty, ...) never change what the settings say.
        eos = self.model.generation_config.eos_token_id
        return GenerationConfig(
            max_new_tokens=self.sampling.max_new_tokens,
            do_sample=False,  # sampling happens in _PerRowSampler, see the module docstring
            eos_token_id=eos if eos is not None else self.tokenizer.eos_token_id,
            pad_token_id=self.tokenizer.pad_token_id,
            stop_strings=stop or None,
            use_cache=True,
        )

    def _sampler(self, observations: Sequence[Observation]) -> LogitsProcessorList:
        if self.sampling.temperature == 0:
            return LogitsProcessorList()
        generators = [
            torch.Generator(device=self.model.device).manual_seed(step_seed(o.seed, o.step))
            for o in observations
        ]
        processors: list[LogitsProcessor] = [TemperatureLogitsWarper(self.sampling.temperature)]
        if self.sampling.top_p < 1:
            processors.append(TopPLogitsWarper(self.sampling.top_p))
        processors.append(_PerRowSampler(generators))
        return LogitsProcessorList(processors)


class _PerRowSampler(LogitsProcessor):
    """Adds Gumbel noise from each row's own generator, so greedy argmax is a per-row sample."""

    def __init__(self, generators: list[torch.Generator]):
        self.generators = generators

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        scores = scores.float()  # (batch, vocab)
        uniform = torch.stack(
            [
                torch.rand(scores.shape[1], generator=g, device=scores.device)
                for g in self.generators
            ]
        )
        gumbel = -torch.log(-torch.log(uniform.clamp_(min=1e-20, max=1 - 1e-7)))
        return scores + gumbel


def shared_prefix_length(rows: Sequence[Sequence[int]]) -> int:
    """Length of the token prefix common to every row, leaving each row at least one token."""
    limit = min(len(row) for row in rows) - 1
    first = rows[0]
    length = 0
    while length < limit and all(row[length] == first[length] for row in rows):
        length += 1
    return length


def layout_rows(
    rows: Sequence[Sequence[int]], prefix: int, pad_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch token rows as ``shared prefix | padding | own suffix`` with an attention mask.

    With ``prefix == 0`` this is plain left padding. Padding after the prefix keeps
    the prefix at the same positions in every row, so its keys and values are the
    same for all rows; position ids follow the mask, so each row sees exactly the
    positions it would see alone.
    """
    width = max(len(row) for row in rows)
    ids, mask = [], []
    for row in rows:
        padding = width - len(row)
        ids.append([*row[:prefix], *[pad_id] * padding, *row[prefix:]])
        mask.append([1] * prefix + [0] * padding + [1] * (len(row) - prefix))
    return torch.tensor(ids, dtype=torch.long), torch.tensor(mask, dtype=torch.long)


def _has_plain_cache(model: PreTrainedModel) -> bool:
    """True when the model's KV cache is full attention in every layer (no sliding window)."""
    try:
        dynamic = DynamicCache(config=model.config)
        static = StaticCache(config=model.config, max_cache_len=1)
    except (TypeError, ValueError, AttributeError):
        return False
    return all(type(layer) is DynamicLayer for layer in dynamic.layers) and all(
        type(layer) is StaticLayer for layer in static.layers
    )

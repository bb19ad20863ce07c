"""A Hugging Face causal-LM policy: one batched ``generate`` per round, stopping after each call.

Every live episode of a rollout round is one row of one ``generate`` call. The
prompt is the env's transcript (``prompt_format="text"``) or its chat messages
through the tokenizer's chat template (``"chat"``); ``"auto"`` picks chat when the
tokenizer has a template. Generation stops for a row as soon as it closes a tool
call or an answer (transformers' stop strings), and anything decoded past the
closing tag is cut. Each row only computes tokens the model has not seen: an
episode's keys and values are kept between rounds and the system prompt shared by
new episodes is computed once per batch (``kv_cache``).

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
    GenerationConfig,
    LogitsProcessor,
    LogitsProcessorList,
    PreTrainedModel,
    TemperatureLogitsWarper,
    TopPLogitsWarper,
)

from swirl_agents.policies.base import (
    Observation,
    PolicyStats,
    SamplingSettings,
    cut_at_stop,
    step_seed,
)
from swirl_agents.policies.kv_cache import EpisodeKVCache, layout_rows, supports_reuse

PromptFormat = Literal["auto", "text", "chat"]


class HFPolicy:
    """A local causal LM as a policy.

    Args:
        model: A transformers causal LM (already on its device).
        tokenizer: Its tokenizer (the policy pads rows itself; a missing pad token
            becomes the EOS token).
        sampling: Temperature (0 for greedy), top-p, max new tokens and stop strings.
        prompt_format: ``"text"`` (the transcript), ``"chat"`` (the messages through
            the chat template) or ``"auto"`` (chat when the tokenizer has a template).
        reuse_kv: Keep each episode's keys and values between calls and compute the
            system prompt once per batch, so a round only runs the tokens it has not
            seen (see ``kv_cache``). Used where the model's cache is plain full
            attention; costs the memory of the live episodes' caches between calls.
        name: Shown in stored trajectories; defaults to the model's path.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: Any,
        *,
        sampling: SamplingSettings | None = None,
        prompt_format: PromptFormat = "auto",
        reuse_kv: bool = True,
        name: str | None = None,
    ):
        if prompt_format not in ("auto", "text", "chat"):
            raise ValueError(f"prompt_format must be auto, text or chat, got {prompt_format!r}.")
        has_template = bool(getattr(tokenizer, "chat_template", None))
        if prompt_format == "chat" and not has_template:
            raise ValueError("prompt_format='chat' needs a tokenizer with a chat template.")
        self.model = model.eval()
        self.tokenizer = tokenizer
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.sampling = sampling or SamplingSettings()
        self.chat = prompt_format == "chat" or (prompt_format == "auto" and has_template)
        self.name = name or getattr(model.config, "_name_or_path", "") or type(model).__name__
        parameters = inspect.signature(model.forward).parameters
        self._cache_argument = "cache" if "cache" in parameters else "past_key_values"
        self.kv_cache = (
            EpisodeKVCache(model, self._cache_argument)
            if reuse_kv and supports_reuse(model)
            else None
        )
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
            **kwargs: ``HFPolicy`` settings (``sampling``, ``prompt_format``, ``reuse_kv``,
                ``name``).
        """
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if dtype is None:
            dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        elif isinstance(dtype, str):
            if not isinstance(getattr(torch, dtype, None), torch.dtype):
                raise ValueError(f"unknown dtype {dtype!r}; use e.g. bfloat16, float16, float32.")
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
            "reuse_kv": self.kv_cache is not None,
            "dtype": str(self.model.dtype).removeprefix("torch."),
            "device": str(self.model.device),
        }

    def close(self) -> None:
        """Free the keys and values kept for live episodes."""
        if self.kv_cache is not None:
            self.kv_cache.clear()

    @torch.inference_mode()
    def act(self, observations: Sequence[Observation]) -> list[str]:
        """Generate one action per observation in a single batched ``generate`` call."""
        if not observations:
            return []
        started = time.perf_counter()
        rows = self._tokenize(observations)
        stop = self.sampling.stop_strings(observations)
        pad_id = self.tokenizer.pad_token_id
        keys = [o.seed for o in observations]
        cache = {}
        if self.kv_cache is not None:
            input_ids, attention_mask, static = self.kv_cache.prepare(
                keys, rows, self.sampling.max_new_tokens, pad_id
            )
            cache[self._cache_argument] = static
        else:
            input_ids, attention_mask = layout_rows(rows, [0] * len(rows), pad_id)
            input_ids = input_ids.to(self.model.device)
            attention_mask = attention_mask.to(self.model.device)
        output = self.model.generate(
            input_ids=input_ids,
            attention_mask=attention_mask,
            generation_config=self._generation_config(stop),
            logits_processor=self._sampler(observations),
            tokenizer=self.tokenizer if stop else None,
            **cache,
        )
        new_tokens = output[:, input_ids.shape[1] :]
        if self.kv_cache is not None:
            self.kv_cache.save(
                keys, rows, attention_mask, new_tokens, cache[self._cache_argument], pad_id
            )
        texts = self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        generated = int((new_tokens != pad_id).sum())
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

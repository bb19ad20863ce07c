"""A Hugging Face causal-LM policy: every live episode is one row of one decoding loop per round.

The prompt is the env's transcript (``prompt_format="text"``) or its chat messages
through the tokenizer's chat template (``"chat"``); ``"auto"`` picks chat when the
tokenizer has a template. A transcript is encoded segment by segment (the prompt, then
each action and feedback), as training encodes it, and each round only encodes the
segments that are new since the episode's last round (``swirl_agents.encoding``). The
policy reads only the observation's text, messages, segments, step, seed and stop
tags: it needs no ``Task``.

Decoding is a plain loop of forward passes over the model's cache, one token per row
per pass: a row stops at the end-of-sequence token, at ``max_new_tokens``, or as soon
as its text contains a stop string (the closing tag of a tool call or an answer), and
anything decoded past the stop string is cut. The loop ends when every row has
stopped. Each row only computes tokens the model has not seen: an episode's keys and
values are kept between rounds and the prefix new episodes share is computed once
(``kv_cache``).

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

import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LogitsProcessor,
    PreTrainedModel,
    TemperatureLogitsWarper,
    TopPLogitsWarper,
)

from swirl_agents.encoding import (
    PromptFormat,
    SegmentCache,
    chat_prompt_ids,
    resolve_prompt_format,
)
from swirl_agents.policies.base import (
    Observation,
    PolicyStats,
    SamplingSettings,
    cut_at_stop,
    step_seed,
)
from swirl_agents.policies.kv_cache import (
    EpisodeKVCache,
    ModelCall,
    PaddedBatch,
    supports_reuse,
)


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
            system prompt new episodes share once, so a round only runs the tokens it has not
            seen (see ``kv_cache``). Used where the model's cache is plain full
            attention; costs the memory of the live episodes' caches between calls. A
            CPU model on ``sdpa`` is switched to ``slot_attention`` (the same outside
            the policy's decoding), which reads the shared prefix once per step.
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
        layout = resolve_prompt_format(tokenizer, prompt_format)
        self.model = model.eval()
        self.tokenizer = tokenizer
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.sampling = sampling or SamplingSettings()
        self.chat = layout == "chat"
        self.name = name or getattr(model.config, "_name_or_path", "") or type(model).__name__
        self._call = ModelCall(model)
        self.kv_cache = EpisodeKVCache(self._call) if reuse_kv and supports_reuse(model) else None
        eos = model.generation_config.eos_token_id
        eos = eos if eos is not None else tokenizer.eos_token_id
        self._eos = set(eos if isinstance(eos, list) else [eos]) - {None}
        self._stop_tokens: dict[tuple[str, ...], torch.Tensor] = {}
        try:  # the text layout's ids of each live episode (keyed by seed), kept between rounds
            self._segments: SegmentCache | None = SegmentCache(tokenizer)
        except ValueError:  # a tokenizer that cannot encode segment by segment
            self._segments = None
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
        """Generate one action per observation, all rows in one decoding loop."""
        if not observations:
            return []
        started = time.perf_counter()
        rows = self._tokenize(observations)
        stop = self.sampling.stop_strings(observations)
        pad_id = self.tokenizer.pad_token_id
        batch: EpisodeKVCache | PaddedBatch
        if self.kv_cache is not None:
            batch = self.kv_cache
            keys = [o.seed for o in observations]
            logits = batch.start(keys, rows, self.sampling.max_new_tokens, pad_id)
        else:
            batch = PaddedBatch(self._call, pad_id)
            logits = batch.start(rows)
        produced = self._decode(batch, logits, observations, stop)
        texts = self.tokenizer.batch_decode(produced, skip_special_tokens=True)
        self.stats.record(started, len(rows), sum(map(len, rows)), sum(map(len, produced)))
        return [cut_at_stop(text, stop) for text in texts]

    def _decode(
        self,
        batch: EpisodeKVCache | PaddedBatch,
        logits: torch.Tensor,
        observations: Sequence[Observation],
        stop: list[str],
    ) -> list[list[int]]:
        """Generate every row's tokens from the prompt pass's ``logits``; returns them without EOS.

        Each pass feeds the rows still generating their last token; a row that
        stopped leaves the batch (``batch.rows`` says which row each logits row is).
        """
        limit = self.sampling.max_new_tokens
        sample = self._sampler(observations)
        produced: list[list[int]] = [[] for _ in observations]
        while True:
            tokens = sample(batch.rows, logits.float()).argmax(-1)
            may_stop = self._may_stop(stop, logits.shape[-1])[tokens].tolist()
            ids = tokens.tolist()
            keep = []
            for index, row in enumerate(batch.rows):
                if ids[index] in self._eos:
                    keep.append(False)
                    continue
                produced[row].append(ids[index])
                stopped = may_stop[index] and self._stopped(produced[row], stop)
                keep.append(not stopped and len(produced[row]) < limit)
            if not any(keep):
                return produced
            logits = batch.advance(ids, keep)

    def _may_stop(self, stop: list[str], vocab: int) -> torch.Tensor:
        """Per token id: whether the token can complete a stop string, so the row's text is checked.

        A stop string completes on the token that writes its last character; tokens
        that decode to part of a character (shown as U+FFFD) may write any of them.
        """
        key = tuple(stop)
        if key not in self._stop_tokens:
            last = {s[-1] for s in stop if s} | {"\ufffd"}
            known = min(vocab, len(self.tokenizer))
            texts = self.tokenizer.batch_decode([[i] for i in range(known)])
            flags = [any(char in text for char in last) for text in texts]
            flags += [True] * (vocab - known)
            self._stop_tokens[key] = torch.tensor(flags, device=self.model.device)
        return self._stop_tokens[key]

    def _stopped(self, tokens: list[int], stop: list[str]) -> bool:
        text = self.tokenizer.decode(tokens, skip_special_tokens=True)
        return any(s in text for s in stop if s)

    def _tokenize(self, observations: Sequence[Observation]) -> list[list[int]]:
        if self.chat:
            return chat_prompt_ids(self.tokenizer, [o.messages for o in observations])
        if self._segments is None:
            return self.tokenizer([o.text for o in observations])["input_ids"]
        return self._segments.encode([(o.seed, o.segments or (o.text,)) for o in observations])

    def _sampler(
        self, observations: Sequence[Observation]
    ) -> Callable[[list[int], torch.Tensor], torch.Tensor]:
        """Scores whose argmax is each row's token: the logits (greedy) or a per-row sample.

        The returned function takes the rows (indices into ``observations``) and their logits.
        """
        if self.sampling.temperature == 0:
            return lambda rows, logits: logits
        generators = [
            torch.Generator(device=self.model.device).manual_seed(step_seed(o.seed, o.step))
            for o in observations
        ]
        warpers: list[LogitsProcessor] = [TemperatureLogitsWarper(self.sampling.temperature)]
        if self.sampling.top_p < 1:
            warpers.append(TopPLogitsWarper(self.sampling.top_p))

        def sample(rows: list[int], logits: torch.Tensor) -> torch.Tensor:
            for warper in warpers:
                logits = warper(None, logits)
            return logits + _gumbel([generators[row] for row in rows], logits)

        return sample


def _gumbel(generators: list[torch.Generator], logits: torch.Tensor) -> torch.Tensor:
    """Gumbel noise from each row's own generator, so argmax(logits + noise) is a per-row sample."""
    uniform = torch.stack(
        [torch.rand(logits.shape[1], generator=g, device=logits.device) for g in generators]
    )
    return -torch.log(-torch.log(uniform.clamp_(min=1e-20, max=1 - 1e-7)))

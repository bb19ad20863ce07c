"""A judge backed by a local Hugging Face causal LM.

Two ways to read a verdict:

- ``mode="generate"``: the paper's reason-first prompt; the model writes its
  reasoning and a verdict word, which ``parse_verdict`` reads (score 1.0/0.0, or
  None and unparseable). Faithful to the paper's judge; costs a generation per query.
- ``mode="logits"``: the direct prompt followed by ``Verdict:``; one forward pass
  gives the next-token logits, and the soft score is the softmax over two of them:
  the first token of ``" GOOD"`` against the first token of ``" BAD"`` (``" YES"`` /
  ``" NO"`` for outcome), i.e. P(GOOD) renormalised over the two verdicts. The
  leading space is there because the word follows ``Verdict:`` after a space. When
  the two words share leading tokens (a tokenizer that splits off the space), the
  shared tokens are appended to the prompt and the first tokens where they differ
  are compared. The verdict is GOOD when the score is at least ``threshold``. A
  logit judge always parses; a generating one may not.

Queries are batched (left padding, explicit position ids so a padded row scores
exactly as it would alone), and a state too long for the model is cut from the left,
keeping the instructions, the most recent context and the whole action.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from swirl_agents.judges.base import (
    NO_ANSWER,
    Judgement,
    OutcomeQuery,
    ProcessQuery,
    hard_judgement,
)
from swirl_agents.judges.prompts import (
    OUTCOME_FIELDS,
    OUTCOME_PROMPT,
    PROCESS_FIELDS,
    PROCESS_PROMPT,
    TRUNCATION_MARK,
    JudgePrompt,
    format_answers,
    parse_verdict,
    process_fields,
)

Mode = Literal["generate", "logits"]
TOO_LONG = "unjudged: the prompt and action alone exceed max_prompt_tokens"


class HFJudge:
    """A process and outcome judge running a local causal LM.

    Args:
        model: A path loadable by ``AutoModelForCausalLM.from_pretrained`` (loaded in
            bf16 on CUDA, fp32 on CPU, in eval mode), or a model already loaded, used
            as it is: on its device, in its mode (``tokenizer`` is then required).
        tokenizer: The tokenizer; loaded from ``model`` when it is a path.
        mode: ``"generate"`` (parse the verdict from text) or ``"logits"`` (soft score
            from the next-token logits).
        process_prompt: The process prompt (default: the paper's, for search; use
            ``MATH_PROCESS_PROMPT`` for calculator tasks).
        outcome_prompt: The outcome prompt (default: the paper's QA prompt; use
            ``MATH_OUTCOME_PROMPT`` for math).
        batch_size: Queries per forward pass or generation call.
        max_new_tokens: Generation budget in ``"generate"`` mode.
        max_prompt_tokens: Longest prompt; longer states are cut from the left.
            Default: the model's context length minus the generation budget.
        threshold: In ``"logits"`` mode, the score at or above which a verdict is good.
        chat: Wrap prompts in the tokenizer's chat template; default: when it has one.
        device: Torch device to load a path onto; default CUDA when available, else CPU.
        name: The judge's name; default ``"hf:<path>"``.
    """

    def __init__(
        self,
        model: str | Path | Any,
        tokenizer: Any | None = None,
        *,
        mode: Mode = "generate",
        process_prompt: JudgePrompt = PROCESS_PROMPT,
        outcome_prompt: JudgePrompt = OUTCOME_PROMPT,
        batch_size: int = 8,
        max_new_tokens: int = 256,
        max_prompt_tokens: int | None = None,
        threshold: float = 0.5,
        chat: bool | None = None,
        device: str | None = None,
        name: str | None = None,
    ):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if mode not in ("generate", "logits"):
            raise ValueError(f"mode must be 'generate' or 'logits', got {mode!r}")
        if batch_size < 1 or max_new_tokens < 1:
            raise ValueError("batch_size and max_new_tokens must be at least 1")
        process_prompt.check_fields(PROCESS_FIELDS)
        outcome_prompt.check_fields(OUTCOME_FIELDS)
        if isinstance(model, str | Path):
            self.name = name or f"hf:{model}"
            self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
            dtype = torch.bfloat16 if self.device.type == "cuda" else torch.float32
            tokenizer = tokenizer or AutoTokenizer.from_pretrained(model)
            model = AutoModelForCausalLM.from_pretrained(model, dtype=dtype).to(self.device).eval()
        elif tokenizer is None:
            raise ValueError("a loaded model needs its tokenizer")
        else:
            self.name = name or f"hf:{getattr(model, 'name_or_path', type(model).__name__)}"
            self.device = next(model.parameters()).device
        self.model = model
        self._keeps_last_logits = "logits_to_keep" in inspect.signature(model.forward).parameters
        self.tokenizer = tokenizer
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.mode = mode
        self.prompts = {"process": process_prompt, "outcome": outcome_prompt}
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.threshold = threshold
        self.chat = bool(getattr(tokenizer, "chat_template", None)) if chat is None else chat
        context = getattr(self.model.config, "max_position_embeddings", None) or 4096
        budget = max_new_tokens if mode == "generate" else 1
        self.max_prompt_tokens = max_prompt_tokens or context - budget
        self._verdict_tokens = {kind: self._split_verdicts(p) for kind, p in self.prompts.items()}

    def signature(self, kind: str) -> str:
        """The prompt and the settings that shape a ``kind`` verdict."""
        prompt = self.prompts[kind]
        settings: dict[str, Any] = {"mode": self.mode, "chat": self.chat}
        if self.mode == "generate":
            settings.update(template=prompt.template, max_new_tokens=self.max_new_tokens)
        else:
            settings.update(
                template=prompt.direct_template,
                prefix=prompt.answer_prefix,
                threshold=self.threshold,
            )
        settings.update(positive=prompt.positive, negative=prompt.negative)
        settings["max_prompt_tokens"] = self.max_prompt_tokens
        return json.dumps(settings, sort_keys=True)

    def judge_process(self, queries: Sequence[ProcessQuery]) -> list[Judgement]:
        """Judge each step from its state and action (the gold answer is never shown)."""
        prompts = [self._process_text(query) for query in queries]
        fits = [i for i, text in enumerate(prompts) if text is not None]
        results = [hard_judgement(None, TOO_LONG, self.name)] * len(queries)
        judged = self._judge("process", [prompts[i] for i in fits])
        for i, judgement in zip(fits, judged, strict=True):
            results[i] = judgement
        return results

    def judge_outcome(self, queries: Sequence[OutcomeQuery]) -> list[Judgement]:
        """Judge each final answer; a trajectory without one is BAD without asking the model."""
        asked = [i for i, query in enumerate(queries) if query.prediction is not None]
        results = [hard_judgement(False, NO_ANSWER, self.name)] * len(queries)
        prompts = [self._outcome_text(queries[i]) for i in asked]
        for i, judgement in zip(asked, self._judge("outcome", prompts), strict=True):
            results[i] = judgement
        return results

    # ---- prompt building -------------------------------------------------------------

    def _process_text(self, query: ProcessQuery) -> str | None:
        """The prompt, its state cut from the left to fit; None if the action alone is too long."""
        render = self._renderer("process")
        fields = process_fields(query.question, query.state, query.action)
        fixed = len(self._encode(render(**{**fields, "state": ""})))
        budget = self.max_prompt_tokens - fixed - len(self._encode(TRUNCATION_MARK))
        if budget <= 0:
            return None
        return render(**{**fields, "state": self._keep_tail(query.state, budget)})

    def _outcome_text(self, query: OutcomeQuery) -> str:
        render = self._renderer("outcome")
        return render(
            question=query.question,
            answers=format_answers(query.answers),
            prediction=query.prediction or "",
        )

    def _renderer(self, kind: str):
        prompt = self.prompts[kind]
        direct = self.mode == "logits"

        def render(**fields: str) -> str:
            body = prompt.render(direct, **fields)
            if self.chat:
                messages = [{"role": "user", "content": body}]
                text = self.tokenizer.apply_chat_template(
                    messages, tokenize=False, add_generation_prompt=True
                )
            else:
                text = body + "\n\n"
            return text + prompt.answer_prefix if direct else text

        return render

    def _keep_tail(self, state: str, budget: int) -> str:
        ids = self._encode(state)
        if len(ids) <= budget:
            return state
        return TRUNCATION_MARK + self.tokenizer.decode(ids[len(ids) - budget :])

    def _encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _split_verdicts(self, prompt: JudgePrompt) -> tuple[list[int], int, int]:
        """The tokens ``" GOOD"`` and ``" BAD"`` share, then the first token of each after that."""
        positive, negative = (
            self._encode(" " + prompt.positive),
            self._encode(" " + prompt.negative),
        )
        shared = 0
        while shared < min(len(positive), len(negative)) and positive[shared] == negative[shared]:
            shared += 1
        if shared == min(len(positive), len(negative)):
            raise ValueError(
                f"verdict words {prompt.positive!r} and {prompt.negative!r} are indistinguishable "
                "by their tokens; logit scoring needs them to differ"
            )
        return positive[:shared], positive[shared], negative[shared]

    # ---- model calls -----------------------------------------------------------------

    def _judge(self, kind: str, prompts: list[str]) -> list[Judgement]:
        judgements: list[Judgement] = []
        for start in range(0, len(prompts), self.batch_size):
            batch = prompts[start : start + self.batch_size]
            if self.mode == "generate":
                judgements += self._generate(kind, batch)
            else:
                judgements += self._score(kind, batch)
        return judgements

    def _batch(self, prompts: list[str], suffix: Sequence[int] = ()):
        # Chat templates write their own BOS; plain prompts get the tokenizer's. Rows are
        # cut and padded on the left so that every prompt ends with its verdict cue.
        rows = self.tokenizer(prompts, add_special_tokens=not self.chat)["input_ids"]
        rows = [(row + list(suffix))[-self.max_prompt_tokens :] for row in rows]
        encoded = self.tokenizer.pad(
            {"input_ids": rows}, padding=True, padding_side="left", return_tensors="pt"
        )
        return {name: tensor.to(self.device) for name, tensor in encoded.items()}

    def _generate(self, kind: str, prompts: list[str]) -> list[Judgement]:
        import torch

        prompt = self.prompts[kind]
        inputs = self._batch(prompts)
        with torch.no_grad():
            output = self.model.generate(
                input_ids=inputs["input_ids"],
                attention_mask=inputs["attention_mask"],
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        texts = self.tokenizer.batch_decode(
            output[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True
        )
        return [
            hard_judgement(parse_verdict(text, prompt.positive, prompt.negative), text, self.name)
            for text in texts
        ]

    def _score(self, kind: str, prompts: list[str]) -> list[Judgement]:
        import torch

        prompt = self.prompts[kind]
        shared, positive, negative = self._verdict_tokens[kind]
        inputs = self._batch(prompts, suffix=shared)
        mask = inputs["attention_mask"]
        # Left padding shifts positions unless they are counted from each row's first token.
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        # Only the last position's logits are needed; skip the LM head elsewhere when we can.
        extra = {"logits_to_keep": 1} if self._keeps_last_logits else {}
        with torch.no_grad():
            logits = self.model(
                input_ids=inputs["input_ids"], attention_mask=mask, position_ids=positions, **extra
            ).logits[:, -1, :]
        pair = torch.stack([logits[:, positive], logits[:, negative]], dim=-1).float()
        scores = torch.softmax(pair, dim=-1)[:, 0].tolist()
        return [
            Judgement(
                good=score >= self.threshold,
                score=score,
                raw=f"P({prompt.positive})={score:.4f}",
                judge=self.name,
            )
            for score in scores
        ]

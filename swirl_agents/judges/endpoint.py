"""A judge behind an OpenAI-compatible endpoint (vLLM, SGLang, Ollama, hosted APIs).

The requests go through ``OpenAIPolicy``'s client, so the judge inherits its
concurrency limit, per-request timeout, retries with backoff and its routing among
several replicas (``swirl_agents.replicas``): a batch of queries
is that many concurrent requests, and a server that stays down is a ``PolicyError``
(not an unparseable verdict, and nothing is cached), so a rerun simply resumes.

Decoding is greedy (temperature 0) with the reason-first prompt; the verdict is
parsed from the reply like any generated verdict.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Literal

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
    JudgePrompt,
    format_answers,
    keep_tail,
    parse_verdict,
    process_fields,
)
from swirl_agents.replicas import parse_base_urls


class EndpointJudge:
    """A process and outcome judge served over an OpenAI-compatible API.

    Args:
        base_url: The API root, e.g. ``http://127.0.0.1:8000/v1``; several replicas of
            the model as a list or as one comma-separated string.
        model: The served model's name.
        api: ``"chat"`` (the prompt as one user message) or ``"completions"``.
        process_prompt: The process prompt (default: the paper's, for search; use
            ``MATH_PROCESS_PROMPT`` for calculator tasks).
        outcome_prompt: The outcome prompt (default: the paper's QA prompt; use
            ``MATH_OUTCOME_PROMPT`` for math).
        max_tokens: The reply budget (reasoning plus verdict).
        max_state_chars: Longer states are cut from the left (most recent context kept).
        concurrency: Requests in flight at once per replica.
        timeout: Seconds one attempt may take.
        max_retries: Retries on 429, 5xx, timeouts and connection errors (on any replica).
        api_key_env: Environment variable holding the API key, if any.
        name: The judge's name; default ``"openai:<base_url>#<model>"`` (the base URLs
            comma-separated when there are several).
    """

    def __init__(
        self,
        base_url: str | Sequence[str],
        model: str,
        *,
        api: Literal["chat", "completions"] = "chat",
        process_prompt: JudgePrompt = PROCESS_PROMPT,
        outcome_prompt: JudgePrompt = OUTCOME_PROMPT,
        max_tokens: int = 512,
        max_state_chars: int = 32_000,
        concurrency: int = 8,
        timeout: float = 120.0,
        max_retries: int = 4,
        api_key_env: str = "OPENAI_API_KEY",
        name: str | None = None,
    ):
        from swirl_agents.policies.base import SamplingSettings
        from swirl_agents.policies.openai_compat import OpenAIPolicy

        process_prompt.check_fields(PROCESS_FIELDS)
        outcome_prompt.check_fields(OUTCOME_FIELDS)
        if max_state_chars < 1:
            raise ValueError(f"max_state_chars must be at least 1, got {max_state_chars}")
        base_urls = parse_base_urls(base_url)
        self.name = name or f"openai:{','.join(base_urls)}#{model}"
        self.prompts = {"process": process_prompt, "outcome": outcome_prompt}
        self.max_tokens = max_tokens
        self.max_state_chars = max_state_chars
        self.api = api
        self._client = OpenAIPolicy(
            base_urls,
            model,
            api=api,
            sampling=SamplingSettings(temperature=0.0, max_new_tokens=max_tokens),
            api_key_env=api_key_env,
            timeout=timeout,
            max_retries=max_retries,
            concurrency=concurrency,
        )

    def signature(self, kind: str) -> str:
        """The prompt and the decoding settings that shape a ``kind`` verdict."""
        prompt = self.prompts[kind]
        return json.dumps(
            {
                "api": self.api,
                "template": prompt.template,
                "positive": prompt.positive,
                "negative": prompt.negative,
                "max_tokens": self.max_tokens,
                "max_state_chars": self.max_state_chars,
                "temperature": 0.0,
            },
            sort_keys=True,
        )

    def judge_process(self, queries: Sequence[ProcessQuery]) -> list[Judgement]:
        """Judge each step from its state and action (the gold answer is never sent)."""
        prompt = self.prompts["process"]
        texts = []
        for query in queries:
            # The question is read from the whole state, before its start is cut away.
            fields = process_fields(query.question, query.state, query.action)
            fields["state"] = keep_tail(query.state, self.max_state_chars)
            texts.append(prompt.render(**fields))
        return self._judge(prompt, texts)

    def judge_outcome(self, queries: Sequence[OutcomeQuery]) -> list[Judgement]:
        """Judge each final answer; a trajectory without one is BAD without a request."""
        prompt = self.prompts["outcome"]
        asked = [i for i, query in enumerate(queries) if query.prediction is not None]
        texts = [
            prompt.render(
                question=queries[i].question,
                answers=format_answers(queries[i].answers),
                prediction=queries[i].prediction or "",
            )
            for i in asked
        ]
        results = [hard_judgement(False, NO_ANSWER, self.name)] * len(queries)
        for i, judgement in zip(asked, self._judge(prompt, texts), strict=True):
            results[i] = judgement
        return results

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def __enter__(self) -> EndpointJudge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _judge(self, prompt: JudgePrompt, texts: list[str]) -> list[Judgement]:
        if not texts:
            return []
        from swirl_agents.policies.base import Observation

        observations = [
            Observation(text=text, messages=[{"role": "user", "content": text}]) for text in texts
        ]
        replies = self._client.act(observations)
        return [
            hard_judgement(parse_verdict(reply, prompt.positive, prompt.negative), reply, self.name)
            for reply in replies
        ]

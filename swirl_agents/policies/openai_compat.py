"""A policy behind an OpenAI-compatible HTTP endpoint: vLLM, SGLang, Ollama, llama.cpp, hosted APIs.

Both endpoint kinds are supported: ``/chat/completions`` (the observation's chat
messages) and ``/completions`` (the transcript text, for base models). A batch of
observations becomes that many concurrent requests, at most ``concurrency`` in
flight per replica. Each request has a timeout and is retried on 429, 5xx, timeouts
and connection errors; anything else (a 4xx, a reply that is not the expected JSON)
fails at once with an error that names the URL and what came back. A server that is
down is a ``PolicyError`` after the retries, never a hang: one request takes at most
``(max_retries + 1) * timeout`` plus the backoff.

Several base URLs are replicas of one model (``swirl_agents.replicas``): each attempt
goes to the least-loaded healthy replica, a retry to another replica at once (backoff
only once every healthy replica was tried), and a replica that refuses connections or
fails repeatedly is taken out until a health probe (``GET /models``) finds it back.
Whatever replicas a request went through, it returns once to its caller.

Each request sends ``seed = step_seed(observation.seed, step)``, so a server that
honours seeds (vLLM, SGLang, OpenAI on a best-effort basis) samples an episode's
action independently of batching and of a crash and resume. Servers cut the stop
string from the reply; the closing tag is put back so the env reads a complete call.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import httpx

from swirl_agents.policies.base import (
    Observation,
    PolicyStats,
    SamplingSettings,
    cut_at_stop,
    restore_stop,
    step_seed,
)
from swirl_agents.replicas import Replica, ReplicaPool, parse_base_urls

_RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}
_UNHEALTHY_STATUS = {500, 502, 503, 504}
_RETRY_ERRORS = (httpx.TimeoutException, httpx.TransportError)
_MAX_ERROR_BODY = 300


class PolicyError(RuntimeError):
    """A policy could not produce actions (server down, bad reply, retries used up)."""


class OpenAIPolicy:
    """A model served over an OpenAI-compatible API.

    Args:
        base_url: The API root, e.g. ``http://127.0.0.1:8000/v1``; several replicas of
            the model as a list or as one comma-separated string.
        model: The served model's name (``"model"`` in each request).
        api: ``"chat"`` (chat completions, with messages) or ``"completions"``
            (text completions, with the transcript).
        sampling: Temperature, top-p, max new tokens and stop strings.
        api_key_env: Environment variable holding the API key (sent as a bearer
            token when set; local servers need none).
        timeout: Seconds one attempt may take (connect, send and read together).
        max_retries: Retries after the first attempt on retryable failures, on any
            replica (one budget per request).
        backoff: First retry delay in seconds; doubles each retry, with jitter.
        max_backoff: Cap on one delay (also on a server's ``Retry-After``).
        concurrency: Requests in flight at once per replica.
        max_failures: Failures in a row (5xx, timeouts, dropped connections) that take a
            replica out; a refused connection takes it out at once.
        cooldown: Seconds before an ejected replica is probed again.
        extra_body: Extra fields merged into every request (``top_k``,
            ``include_stop_str_in_output``, ...).
    """

    name = "openai"

    def __init__(
        self,
        base_url: str | Sequence[str],
        model: str,
        *,
        api: Literal["chat", "completions"] = "chat",
        sampling: SamplingSettings | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        timeout: float = 60.0,
        max_retries: int = 4,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        concurrency: int = 8,
        max_failures: int = 3,
        cooldown: float = 2.0,
        extra_body: dict[str, Any] | None = None,
    ):
        if api not in ("chat", "completions"):
            raise ValueError(f"api must be 'chat' or 'completions', got {api!r}.")
        if timeout <= 0 or max_retries < 0 or concurrency < 1:
            raise ValueError("need timeout > 0, max_retries >= 0 and concurrency >= 1.")
        self.base_urls = parse_base_urls(base_url)
        self.path = "/chat/completions" if api == "chat" else "/completions"
        self.replicas = ReplicaPool(
            self.base_urls, self._probe, max_failures=max_failures, cooldown=cooldown
        )
        self.model = model
        self.api = api
        self.sampling = sampling or SamplingSettings()
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.concurrency = concurrency
        self.extra_body = dict(extra_body or {})
        headers = {"Content-Type": "application/json"}
        api_key = os.environ.get(api_key_env, "")
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        in_flight = concurrency * len(self.base_urls)
        self._client = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight),
        )
        self._executor = ThreadPoolExecutor(in_flight, thread_name_prefix="openai-policy")
        self._jitter_lock = threading.Lock()
        self._jitter = random.Random()
        self.stats = PolicyStats()

    def settings(self) -> dict[str, Any]:
        """The endpoint, model and sampling settings, stored with each trajectory."""
        urls = [base + self.path for base in self.base_urls]
        return {
            "url": urls[0] if len(urls) == 1 else urls,
            "model": self.model,
            "temperature": self.sampling.temperature,
            "top_p": self.sampling.top_p,
            "max_new_tokens": self.sampling.max_new_tokens,
            "stop": list(self.sampling.stop),
            **self.extra_body,
        }

    def act(self, observations: Sequence[Observation]) -> list[str]:
        """Request every action concurrently; raises ``PolicyError`` if any request fails."""
        started = time.perf_counter()
        stop = self.sampling.stop_strings(observations)
        futures = [self._executor.submit(self._request, o, stop) for o in observations]
        replies = [future.result() for future in futures]
        self.stats.record(
            started,
            len(observations),
            sum(reply[1] for reply in replies),
            sum(reply[2] for reply in replies),
        )
        return [reply[0] for reply in replies]

    def close(self) -> None:
        """Close the connection pool and the worker threads."""
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._client.close()

    def __enter__(self) -> OpenAIPolicy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _body(self, observation: Observation, stop: list[str]) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "temperature": self.sampling.temperature,
            "top_p": self.sampling.top_p,
            "max_tokens": self.sampling.max_new_tokens,
            "seed": step_seed(observation.seed, observation.step) % (2**31),
        }
        if stop:
            body["stop"] = stop
        if self.api == "chat":
            body["messages"] = observation.messages
        else:
            body["prompt"] = observation.text
        body.update(self.extra_body)
        return body

    def _request(self, observation: Observation, stop: list[str]) -> tuple[str, int, int]:
        """One action: the text (closing tag restored), prompt tokens, completion tokens."""
        body = self._body(observation, stop)
        reply, url = self._post_with_retries(body)
        text, finish_reason = self._parse(reply, url)
        if finish_reason == "stop":
            text = restore_stop(text, stop)
        usage = reply.get("usage") if isinstance(reply.get("usage"), dict) else {}
        return (
            cut_at_stop(text, stop),
            int(usage.get("prompt_tokens") or 0),
            int(usage.get("completion_tokens") or 0),
        )

    def _post_with_retries(self, body: dict[str, Any]) -> tuple[dict[str, Any], str]:
        """The reply and the URL that gave it."""
        failure, server_delay = "", None
        tried: list[Replica] = []
        for attempt in range(self.max_retries + 1):
            if attempt and not self.replicas.has_untried(tried):
                time.sleep(self._delay(attempt, server_delay))
            replica = self.replicas.acquire(tried)
            tried.append(replica)
            url = replica.url + self.path
            at = f" (at {url})" if len(self.base_urls) > 1 else ""
            try:
                response = self._client.post(url, json=body)
            except httpx.ConnectError as error:  # nothing listens there: take it out at once
                self.replicas.release(replica, refused=True)
                failure, server_delay = f"{type(error).__name__}: {error}{at}", None
                continue
            except _RETRY_ERRORS as error:
                self.replicas.release(replica, failed=True)
                failure, server_delay = f"{type(error).__name__}: {error}{at}", None
                continue
            except BaseException:
                self.replicas.release(replica)
                raise
            self.replicas.release(replica, failed=response.status_code in _UNHEALTHY_STATUS)
            if response.status_code in _RETRY_STATUS:
                failure = f"HTTP {response.status_code}: {_snippet(response.text)}{at}"
                server_delay = _retry_after(response)
                continue
            if response.status_code >= 400:
                raise PolicyError(
                    f"{url} answered HTTP {response.status_code}: {_snippet(response.text)}"
                )
            try:
                reply = response.json()
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise PolicyError(
                    f"{url} answered with invalid JSON: {_snippet(response.text)}"
                ) from None
            if not isinstance(reply, dict):
                raise PolicyError(f"{url} answered {type(reply).__name__}, not a JSON object.")
            return reply, url
        urls = ", ".join(dict.fromkeys(replica.url + self.path for replica in tried))
        raise PolicyError(f"{urls} failed {self.max_retries + 1} attempts; last failure: {failure}")

    def _probe(self, base_url: str) -> bool:
        """Whether a replica answers ``GET /models`` (any reply below 500 means it is up)."""
        response = self._client.get(base_url + "/models", timeout=min(self.timeout, 5.0))
        return response.status_code < 500

    def _delay(self, attempt: int, server_delay: float | None) -> float:
        """Exponential backoff with jitter, or the server's ``Retry-After`` when longer (capped)."""
        delay = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
        with self._jitter_lock:  # jitter keeps many clients from retrying in step
            delay *= 0.5 + self._jitter.random() / 2
        if server_delay is not None:
            delay = max(delay, server_delay)
        return min(self.max_backoff, delay)

    def _parse(self, reply: dict[str, Any], url: str) -> tuple[str, str | None]:
        try:
            choice = reply["choices"][0]
            if self.api == "chat":
                text = choice["message"].get("content")
            else:
                text = choice["text"]
        except (KeyError, IndexError, TypeError, AttributeError):
            raise PolicyError(
                f"{url} answered without a completion: {_snippet(json.dumps(reply))}"
            ) from None
        if text is None:
            text = ""  # a reply with no content (e.g. only a refusal) is an empty action
        if not isinstance(text, str):
            raise PolicyError(f"{url} answered a {type(text).__name__} completion, not text.")
        return text, choice.get("finish_reason")


def _snippet(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_ERROR_BODY else text[: _MAX_ERROR_BODY - 1] + "…"


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers.get("retry-after", ""))
    except ValueError:
        return None

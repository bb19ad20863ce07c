"""The Policy protocol: a batch of observations in, one action string per observation out.

A policy is anything with an ``act`` method; subclassing is not needed::

    class AlwaysAnswer:
        name = "always-answer"

        def act(self, observations):
            return ["<answer>42</answer>" for _ in observations]

Each ``Observation`` carries the env's transcript (``text``), the same transcript as
chat messages (``messages``) and in segments; a policy reads whichever it wants. It
also carries the episode's context: the step number, a seed that depends only on the
run's seed, the task and the sample (so sampling does not depend on batch size or on
a crash and resume), the closing tags after which the env stops reading an action,
and the task itself, which only scripted policies read (its gold path): a model
policy works from the transcript alone, so an observation may come without a task.

Optional extras the rollout engine uses when present: ``settings() -> dict`` (stored
with every trajectory), ``stats`` (a ``PolicyStats``, for tokens/s) and ``close()``.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from swirl_envs import Task


@dataclass(frozen=True)
class Observation:
    """What a policy sees of one live episode.

    Attributes:
        text: The transcript so far (SWiRL's state s_k), exactly as the env built it.
        messages: The same transcript as chat messages (``role``, ``content``).
        task: The episode's task, or None; scripted policies read ``gold_path`` from
            it, and model policies must ignore it.
        step: How many actions the episode has taken so far.
        seed: The episode's seed (see ``episode_seed``); combine it with ``step``
            through ``step_seed`` for anything random.
        stop: Closing tags that end an action in this env (``"</answer>"``, ...).
        segments: ``text`` in pieces: the first observation, then each action and the
            env's feedback to it; joined, they are ``text``. Empty when unknown. A
            model policy encodes them one by one, as training encodes transcripts.
    """

    text: str
    messages: list[dict[str, str]]
    task: Task | None = None
    step: int = 0
    seed: int = 0
    stop: tuple[str, ...] = ()
    segments: tuple[str, ...] = ()


@runtime_checkable
class Policy(Protocol):
    """Maps a batch of observations to a batch of actions (one string each, same order)."""

    def act(self, observations: Sequence[Observation]) -> list[str]:
        """Return the next action of every episode in ``observations``."""
        ...


@dataclass
class PolicyStats:
    """Running totals a policy keeps so the rollout can report throughput.

    Attributes:
        calls: ``act`` calls so far.
        actions: Actions returned so far.
        prompt_tokens: Tokens read (as the model's tokenizer counts them).
        completion_tokens: Tokens generated.
        seconds: Wall time spent inside ``act``.
    """

    calls: int = 0
    actions: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0

    @property
    def tokens_per_second(self) -> float:
        """Generated tokens per second of ``act`` time."""
        return self.completion_tokens / self.seconds if self.seconds > 0 else 0.0

    def record(self, started: float, actions: int, prompt_tokens: int, completion_tokens: int):
        """Add one ``act`` call that began at ``time.perf_counter()`` value ``started``."""
        self.calls += 1
        self.actions += actions
        self.prompt_tokens += prompt_tokens
        self.completion_tokens += completion_tokens
        self.seconds += time.perf_counter() - started


@dataclass(frozen=True)
class SamplingSettings:
    """How a model policy samples an action.

    Attributes:
        temperature: Softmax temperature; 0 means greedy decoding.
        top_p: Nucleus sampling mass (1.0 keeps every token).
        max_new_tokens: Hard cap on one action's length in tokens.
        stop: Strings that end an action; when empty, the observations' ``stop`` tags
            are used.
    """

    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 128
    stop: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self):
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}.")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}.")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}.")

    def stop_strings(self, observations: Sequence[Observation]) -> list[str]:
        """The configured stop strings, or the union of the observations' closing tags."""
        if self.stop:
            return list(self.stop)
        return sorted({tag for observation in observations for tag in observation.stop})


def describe_policy(policy: Policy) -> dict[str, Any]:
    """The policy's name and settings, as stored with each trajectory."""
    settings = policy.settings() if hasattr(policy, "settings") else {}
    name = getattr(policy, "name", None) or type(policy).__name__
    return {"name": name, **settings}


def episode_seed(seed: int, task_id: str, sample: int) -> int:
    """A 63-bit seed for one episode that depends only on the run seed, the task and the sample.

    A stable hash (not Python's ``hash``, which changes between processes), so a
    resumed run draws exactly what the interrupted run would have.
    """
    return _hash_to_int(f"{seed}\x00{task_id}\x00{sample}")


def step_seed(seed: int, step: int) -> int:
    """A 63-bit seed for one step of an episode whose seed is ``seed``."""
    return _hash_to_int(f"{seed}\x00step\x00{step}")


def _hash_to_int(text: str) -> int:
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    """Cut ``text`` right after the first stop string it contains (generation may overshoot)."""
    ends = [text.find(s) + len(s) for s in stop if s and s in text]
    return text[: min(ends)] if ends else text


def restore_stop(text: str, stop: Sequence[str]) -> str:
    """Re-append the closing tag a server cut off.

    OpenAI-style servers drop the matched stop string from the reply, so
    ``"... <answer>42"`` came from ``"... <answer>42</answer>"``: if the last tag
    opened in ``text`` is one of the ``stop`` tags and is not closed, close it.
    """
    openers = {s[:1] + s[2:]: s for s in stop if s.startswith("</") and s.endswith(">")}
    positions = {opener: text.rfind(opener) for opener in openers}
    opened = [opener for opener, position in positions.items() if position >= 0]
    if not opened:
        return text
    last = max(opened, key=positions.__getitem__)
    if openers[last] in text[positions[last] :]:
        return text
    return text + openers[last]

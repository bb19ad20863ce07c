"""Wrappers that give a text env the Discrete/Box spaces classic RL libraries need.

Stable-Baselines3 and similar libraries cannot act in a text action space or read a
text observation. Two wrappers bridge that gap and leave the env itself unchanged:

- ``CandidateActions`` turns the action space into ``Discrete(n)``: at every step a
  ``CandidateSource`` proposes up to ``n`` action strings and the agent picks a slot.
  ``info["action_mask"]`` (and the ``action_masks()`` method that sb3-contrib's
  ``MaskablePPO`` calls) marks the slots that hold an action.
- ``VectorObservation`` turns the transcript into a fixed-size float vector: hashed
  words and word pairs (or any user embedding), followed, when the env chooses among
  candidates, by a few features per candidate that relate it to the transcript (is it
  an answer, was it taken already, which share of its words the episode and the latest
  tool result contain) and optionally each candidate's own vector. A plain MLP does
  not learn to compare a candidate with the transcript from two hashed vectors in a
  few thousand steps; the relational features are what make PPO learn (measured in
  docs/third_party_agents.md).

Typical use::

    env = gym.make("swirl/SynthHop-v0")
    env = VectorObservation(CandidateActions(env, num_candidates=4), dim=256)
    # Discrete(4) actions, Box(float32) observations: check_env passes, PPO trains.
"""

from __future__ import annotations

import operator
import zlib
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from swirl_envs.actions import ANSWER_TAG, FinalAnswer, ToolCall, parse_action
from swirl_envs.tools.tokenize import Tokenizer, default_tokenizer

CandidateSource = Callable[[gym.Env, str], Sequence[str]]
"""Proposes the actions to choose from: ``(env, observation) -> action strings``.

``env`` is the ``CandidateActions`` wrapper, so a source can read ``env.unwrapped``
(the task, the tools), ``env.episode_actions`` (what was done so far in this episode)
and ``env.np_random`` (the env's RNG, which makes proposals reproducible under a seed).
"""

Embedding = Callable[[str], np.ndarray]
"""Maps a text to a 1-D float vector of a fixed size."""

SLOT_FEATURES = (
    "valid",
    "is_answer",
    "is_tool_call",
    "repeated",
    "recall_in_episode",
    "recall_in_latest",
)
"""The relational features of each candidate slot, in the order they appear."""


class PolicyLike(Protocol):
    """Anything that maps a batch of observations to a batch of action strings."""

    def __call__(self, observations: list[str]) -> list[str]:
        """Return one action string per observation."""
        ...


class GoldPathCandidates:
    """Candidates from the task's gold path: the next expert action plus wrong ones.

    The correct candidate is the first gold action the episode has not taken yet.
    Distractors are the task's other gold tool calls (repeats of done steps, steps not
    due yet) and gold actions of other tasks of the env (wrong tool calls and wrong
    answers). No distractor is a right answer: neither this task's own answer before
    it is due (a lucky early pick would win) nor another task's answer that the env's
    scorer accepts for this one. The list is shuffled with the env's RNG, so the slot
    of the correct action carries no information and a seed fixes everything.

    Works on a ``SwirlEnv`` (it reads ``task``, ``tasks``, ``tools`` and ``scorer``).

    Args:
        num_candidates: How many actions to propose (fewer when too few distinct ones exist).
        same_task_fraction: The share of distractors drawn from the task's own gold path.
    """

    def __init__(self, num_candidates: int = 4, same_task_fraction: float = 0.5):
        if num_candidates < 1:
            raise ValueError(f"num_candidates must be at least 1, got {num_candidates}.")
        if not 0.0 <= same_task_fraction <= 1.0:
            raise ValueError(f"same_task_fraction must be in [0, 1], got {same_task_fraction}.")
        self.num_candidates = num_candidates
        self.same_task_fraction = same_task_fraction

    def __call__(self, env: gym.Env, observation: str) -> list[str]:
        """Return the shuffled candidates for the current step of ``env``'s episode."""
        base = env.unwrapped
        rng: np.random.Generator = env.np_random
        gold = _gold_actions(base.task)
        taken = set(getattr(env, "episode_actions", ()))
        correct = next((action for action in gold if action not in taken), None)
        chosen = [] if correct is None else [correct]
        wanted = self.num_candidates - len(chosen)
        # The gold answer is never a distractor: picking it early would be a lucky win.
        same_task = [a for a in dict.fromkeys(gold) if a != correct and not _is_answer(base, a)]
        quota = min(len(same_task), round(wanted * self.same_task_fraction))
        chosen += [same_task[i] for i in rng.permutation(len(same_task))[:quota]]
        tasks = getattr(base, "tasks", ())
        # Bounded draws: a draw can be this task, a duplicate or another right answer.
        for _ in range(4 * self.num_candidates):
            if len(chosen) >= self.num_candidates or not tasks:
                break
            other = tasks[int(rng.integers(len(tasks)))]
            other_gold = _gold_actions(other)
            action = other_gold[int(rng.integers(len(other_gold)))]
            if (
                other.id != base.task.id
                and action not in chosen
                and not _is_right_answer(base, action)
            ):
                chosen.append(action)
        return [chosen[i] for i in rng.permutation(len(chosen))]


class PolicyCandidates:
    """Candidates proposed by any policy: ``num_samples`` actions for the observation.

    Works with any callable mapping a list of observations to a list of action strings
    (an LLM policy that samples, a scripted policy, a mix). Duplicates are dropped, so
    a confident policy yields fewer candidates and the rest of the slots are masked.

    Args:
        policy: The proposer; it receives the observation ``num_samples`` times.
        num_samples: How many proposals to ask for at each step.
    """

    def __init__(self, policy: PolicyLike, num_samples: int = 4):
        if num_samples < 1:
            raise ValueError(f"num_samples must be at least 1, got {num_samples}.")
        self.policy = policy
        self.num_samples = num_samples

    def __call__(self, env: gym.Env, observation: str) -> list[str]:
        """Ask the policy for proposals and keep the distinct strings, in order."""
        proposals = self.policy([observation] * self.num_samples)
        return list(dict.fromkeys(action for action in proposals if isinstance(action, str)))


class CandidateActions(gym.Wrapper[str, int, str, str]):
    """Make a text env's action space ``Discrete(n)``: choose one of ``n`` proposed actions.

    After each reset and non-final step, ``source`` proposes the candidates; the first
    ``n`` fill the slots and the rest of the slots stay empty (masked). Choosing an
    empty slot or anything that is not a slot index is not an exception: the env
    receives a text that names the bad choice, answers it like any malformed action,
    and the step counts. ``info`` gains ``candidates`` (``n`` strings, ``""`` when
    empty) and ``action_mask`` (``n`` booleans); after the episode ends no slot is valid.

    Args:
        env: A text env (observations and actions are strings).
        num_candidates: The number of slots ``n``.
        source: The ``CandidateSource``; by default ``GoldPathCandidates(num_candidates)``.
    """

    def __init__(
        self, env: gym.Env, num_candidates: int = 4, source: CandidateSource | None = None
    ):
        super().__init__(env)
        if num_candidates < 1:
            raise ValueError(f"num_candidates must be at least 1, got {num_candidates}.")
        self.num_candidates = num_candidates
        self.source = source if source is not None else GoldPathCandidates(num_candidates)
        self.action_space = spaces.Discrete(num_candidates)
        self.candidates: list[str] = [""] * num_candidates
        self.episode_actions: list[str] = []

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        """Reset the env and propose the first step's candidates."""
        observation, info = self.env.reset(seed=seed, options=options)
        self.episode_actions = []
        self._propose(observation)
        return observation, self._with_candidates(info)

    def step(self, action: Any) -> tuple[str, float, bool, bool, dict[str, Any]]:
        """Play the chosen candidate (or a bad-choice message) and propose the next ones."""
        text = self.action_text(action)
        self.episode_actions.append(text)
        observation, reward, terminated, truncated, info = self.env.step(text)
        if terminated or truncated:
            self.candidates = [""] * self.num_candidates
        else:
            self._propose(observation)
        return observation, reward, terminated, truncated, self._with_candidates(info)

    def action_masks(self) -> np.ndarray:
        """The slots that hold an action (the method ``MaskablePPO`` calls)."""
        return np.array([bool(candidate) for candidate in self.candidates], dtype=bool)

    def action_text(self, action: Any) -> str:
        """The text sent to the env for ``action``: the slot's candidate, or why it is invalid."""
        try:
            index = operator.index(action.item() if isinstance(action, np.ndarray) else action)
        except (TypeError, ValueError):
            return f"(invalid choice {_short_repr(action)}: not a slot index)"
        if not 0 <= index < self.num_candidates or not self.candidates[index]:
            valid = [i for i, candidate in enumerate(self.candidates) if candidate]
            return f"(invalid choice {index}: the valid slots are {valid})"
        return self.candidates[index]

    def _propose(self, observation: str) -> None:
        proposed = [a for a in self.source(self, observation) if isinstance(a, str) and a]
        proposed = proposed[: self.num_candidates]
        self.candidates = proposed + [""] * (self.num_candidates - len(proposed))

    def _with_candidates(self, info: dict[str, Any]) -> dict[str, Any]:
        return {**info, "candidates": list(self.candidates), "action_mask": self.action_masks()}


class TextHasher:
    """Hashed bag of words and word n-grams: text to an L2-normalised vector.

    The hash is CRC-32 (not Python's per-process salted ``hash``), so a vector is the
    same in every process and on every machine, and a trained policy stays valid.
    Each term adds ±1 to one of ``dim`` buckets (the sign, from another bit of the
    hash, keeps collisions from adding up on average).

    Args:
        dim: The vector size.
        ngrams: The largest n-gram: 1 for words only, 2 for words and word pairs.
        tokenizer: Text to terms; the search index's word tokeniser by default.
    """

    def __init__(self, dim: int = 256, ngrams: int = 2, tokenizer: Tokenizer = default_tokenizer):
        if dim < 1 or ngrams < 1:
            raise ValueError(f"dim and ngrams must be positive, got {dim} and {ngrams}.")
        self.dim = dim
        self.ngrams = ngrams
        self.tokenizer = tokenizer

    def __call__(self, text: str) -> np.ndarray:
        """Return the ``float32`` vector of ``text`` (all zeros for a text without terms)."""
        terms = self.tokenizer(text)
        grams = [
            " ".join(terms[i : i + n])
            for n in range(1, self.ngrams + 1)
            for i in range(len(terms) - n + 1)
        ]
        vector = np.zeros(self.dim, dtype=np.float64)
        if grams:
            hashes = np.fromiter(
                (_crc32(gram) for gram in grams), dtype=np.uint64, count=len(grams)
            )
            signs = np.where(hashes >> np.uint64(31) & np.uint64(1), -1.0, 1.0)
            vector = np.bincount((hashes % np.uint64(self.dim)).astype(np.intp), signs, self.dim)
        norm = np.linalg.norm(vector)
        return (vector / norm if norm > 0 else vector).astype(np.float32)


class VectorObservation(gym.ObservationWrapper[np.ndarray, Any, str]):
    """Make a text env's observation a fixed-size ``float32`` vector.

    The vector is the embedding of the transcript (without the constant system prompt).
    When the env (or a wrapper inside this one) is a ``CandidateActions``, it is
    followed by each slot's ``SLOT_FEATURES`` (whether the slot holds an action,
    whether it is an answer or a tool call, whether the episode took it already, and
    which share of its words occur in the episode so far and in the text the env added
    last, the latest tool result) and, with ``embed_candidates``, by each slot's
    candidate embedding.

    Args:
        env: A text env, usually wrapped in ``CandidateActions``.
        dim: The size of the hashed embedding (ignored when ``embed`` is given).
        embed: A user embedding ``str -> 1-D array`` used instead of the hasher.
        embed_candidates: Also embed each candidate. Off by default: on the generated
            envs it made PPO learn more slowly (docs/third_party_agents.md).
        tokenizer: The words counted by the recall features (and by the default hasher).
    """

    def __init__(
        self,
        env: gym.Env,
        dim: int = 256,
        embed: Embedding | None = None,
        embed_candidates: bool = False,
        tokenizer: Tokenizer = default_tokenizer,
    ):
        super().__init__(env)
        self.embed: Embedding = embed if embed is not None else TextHasher(dim, tokenizer=tokenizer)
        self.tokenizer = tokenizer
        probe = np.asarray(self.embed("probe"), dtype=np.float32)
        if probe.ndim != 1 or probe.size == 0:
            raise ValueError(f"embed must return a non-empty 1-D vector, got shape {probe.shape}.")
        self.dim = probe.size
        self.embed_candidates = embed_candidates
        self.chooser = _find_wrapper(env, CandidateActions)
        slots = self.chooser.num_candidates if self.chooser is not None else 0
        size = self.dim + slots * (len(SLOT_FEATURES) + (self.dim if embed_candidates else 0))
        bound = 1.0 if embed is None else np.inf  # hashed vectors have unit norm
        self.observation_space = spaces.Box(-bound, bound, shape=(size,), dtype=np.float32)
        self._tools = list(getattr(env.unwrapped, "tools", ()))
        self._prompt = str(getattr(env.unwrapped, "system_prompt", ""))
        self._previous: str | None = None

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset the env; the first observation's latest text is the question."""
        self._previous = None
        return super().reset(seed=seed, options=options)

    def observation(self, observation: str) -> np.ndarray:
        """Embed the transcript and, with candidates, each candidate and its relation to it."""
        episode = observation.removeprefix(self._prompt)
        previous, self._previous = self._previous, observation
        latest = episode
        if previous is not None and observation.startswith(previous):
            latest = observation[len(previous) :]
        parts = [self._embed(episode)]
        if self.chooser is not None:
            candidates = self.chooser.candidates
            episode_terms, latest_terms = set(self.tokenizer(episode)), set(self.tokenizer(latest))
            taken = set(self.chooser.episode_actions)
            parts += [
                self._slot_features(candidate, taken, episode_terms, latest_terms)
                for candidate in candidates
            ]
            if self.embed_candidates:
                parts += [self._embed(candidate) for candidate in candidates]
        return np.concatenate(parts).astype(np.float32)

    def _embed(self, text: str) -> np.ndarray:
        vector = np.asarray(self.embed(text), dtype=np.float32)
        if vector.shape != (self.dim,):
            raise ValueError(f"embed returned shape {vector.shape}, expected ({self.dim},).")
        return vector

    def _slot_features(
        self, candidate: str, taken: set[str], episode_terms: set[str], latest_terms: set[str]
    ) -> np.ndarray:
        if not candidate:
            return np.zeros(len(SLOT_FEATURES), dtype=np.float32)
        parsed = parse_action(candidate, self._tools)
        content = candidate
        if isinstance(parsed, ToolCall):
            content = parsed.argument
        elif isinstance(parsed, FinalAnswer):
            content = parsed.text
        terms = set(self.tokenizer(content))
        features = [
            1.0,
            float(isinstance(parsed, FinalAnswer)),
            float(isinstance(parsed, ToolCall)),
            float(candidate in taken),
            len(terms & episode_terms) / len(terms) if terms else 0.0,
            len(terms & latest_terms) / len(terms) if terms else 0.0,
        ]
        return np.array(features, dtype=np.float32)


def _gold_actions(task: Any) -> list[str]:
    """The task's gold path, or just its gold answer when it has no path."""
    gold = [action for action in task.gold_path if action]
    return gold or [f"<{ANSWER_TAG}>{task.answer}</{ANSWER_TAG}>"]


def _is_answer(base: Any, action: str) -> bool:
    return isinstance(parse_action(action, getattr(base, "tools", ())), FinalAnswer)


def _is_right_answer(base: Any, action: str) -> bool:
    """True for an answer that the env's scorer accepts for the current task."""
    parsed = parse_action(action, getattr(base, "tools", ()))
    return (
        isinstance(parsed, FinalAnswer) and base.scorer(parsed.text, base.task.answers)["score"] > 0
    )


def _find_wrapper(env: gym.Env, kind: type[gym.Wrapper]) -> Any:
    while isinstance(env, gym.Wrapper):
        if isinstance(env, kind):
            return env
        env = env.env
    return None


def _short_repr(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@lru_cache(maxsize=1 << 16)
def _crc32(term: str) -> int:
    return zlib.crc32(term.encode("utf-8"))

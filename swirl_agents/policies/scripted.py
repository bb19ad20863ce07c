"""Scripted policies: the gold-path oracle, a noisy oracle, and a random policy.

They read the task from each ``Observation`` (``task.gold_path``) and need no model,
so they are the baselines, the test doubles and the controlled-noise data source of
the project. Every random choice is drawn from ``step_seed(observation.seed, step)``,
so the actions of an episode depend only on the run seed, the task and the sample:
never on batch size, batch composition or a crash and resume.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from typing import Any

from swirl_agents.policies.base import Observation, step_seed
from swirl_envs import Task
from swirl_envs.actions import ANSWER_TAG

_FINAL_TAG = re.compile(r"<([A-Za-z_][\w-]{0,40})>(.*?)</\1>\s*$", re.S)
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_OPERATOR = re.compile(r"(?<=[\w)\s])([-+*/])(?=[\s\w(.])")
_OPERATORS = "+-*/"


def task_of(observation: Observation) -> Task:
    """The observation's task, which a scripted policy cannot act without.

    Raises:
        ValueError: The observation carries no task (only the rollout engine's do).
    """
    if observation.task is None:
        raise ValueError("a scripted policy reads the task's gold path; this observation has none.")
    return observation.task


def gold_action(observation: Observation) -> str:
    """The gold path's action for this step, or the gold answer once the path is used up."""
    task = task_of(observation)
    if observation.step < len(task.gold_path):
        return task.gold_path[observation.step]
    return f"<{ANSWER_TAG}>{task.answer}</{ANSWER_TAG}>"


class OraclePolicy:
    """Replays each task's gold path: 100% accurate on any env whose tasks carry one."""

    name = "oracle"

    def act(self, observations: Sequence[Observation]) -> list[str]:
        """Return the gold action of every episode."""
        return [gold_action(observation) for observation in observations]

    def settings(self) -> dict[str, Any]:
        """No settings: the oracle is fully determined by the tasks."""
        return {}


class NoisyOraclePolicy:
    """The gold path with each step independently wrong with probability ``p``.

    A wrong step is a plausible mistake, not noise: in a calculation one operand
    becomes another number of the question (or is off by a little) or one operator
    becomes another; a search query or answer that names an entity names another
    entity of the task's passages; a numeric answer is off by a little. After a
    wrong step the oracle returns to the gold path (a wrong intermediate value is
    not carried forward), so an episode is correct exactly when its answer step
    was not corrupted.

    Args:
        p: Probability that a step is wrong.
    """

    name = "noisy-oracle"

    def __init__(self, p: float):
        if not 0 <= p <= 1:
            raise ValueError(f"p must be in [0, 1], got {p}.")
        self.p = p

    def act(self, observations: Sequence[Observation]) -> list[str]:
        """Return the gold action of every episode, each corrupted with probability ``p``."""
        return [self._act_one(observation) for observation in observations]

    def settings(self) -> dict[str, Any]:
        """The noise level."""
        return {"p": self.p}

    def _act_one(self, observation: Observation) -> str:
        action = gold_action(observation)
        rng = random.Random(step_seed(observation.seed, observation.step))
        if rng.random() >= self.p:
            return action
        return corrupt_action(action, observation, rng)


def corrupt_action(action: str, observation: Observation, rng: random.Random) -> str:
    """A plausible wrong version of ``action`` (its final tag's argument changed).

    Returns ``action`` unchanged only when no plausible alternative exists (for
    example an entity query in a task with a single passage).
    """
    match = _FINAL_TAG.search(action)
    if match is None:
        return action
    argument = match.group(2)
    if _OPERATOR.search(argument) and _NUMBER.search(argument):
        wrong = _wrong_calculation(argument, task_of(observation).question, rng)
    elif _NUMBER.fullmatch(argument.strip()):
        wrong = _wrong_number(argument.strip(), rng)
    else:
        wrong = _wrong_entity(argument, observation, rng)
    start, end = match.span(2)
    return action[:start] + wrong + action[end:]


def _wrong_calculation(expression: str, question: str, rng: random.Random) -> str:
    if rng.random() < 0.5:
        operators = list(_OPERATOR.finditer(expression))
        chosen = rng.choice(operators)
        replacement = rng.choice([op for op in _OPERATORS if op != chosen.group(1)])
        return expression[: chosen.start(1)] + replacement + expression[chosen.end(1) :]
    numbers = list(_NUMBER.finditer(expression))
    chosen = rng.choice(numbers)
    from_question = sorted(set(_NUMBER.findall(question)) - {chosen.group(0)})
    replacement = (
        rng.choice(from_question) if from_question else _wrong_number(chosen.group(0), rng)
    )
    return expression[: chosen.start()] + replacement + expression[chosen.end() :]


def _wrong_number(number: str, rng: random.Random) -> str:
    value = float(number) if "." in number else int(number)
    delta = rng.choice([-3, -2, -1, 1, 2, 3])
    wrong = value + delta if value + delta >= 0 else value - delta
    return str(wrong)


def _wrong_entity(argument: str, observation: Observation, rng: random.Random) -> str:
    task = task_of(observation)
    right = argument.strip().lower()
    names = {passage.title for passage in task.passages} | set(task.answers)
    others = sorted(name for name in names if name.strip() and name.strip().lower() != right)
    if not others:
        return argument
    leading = argument[: len(argument) - len(argument.lstrip())]
    return leading + rng.choice(others)


class RandomPolicy:
    """Random, often malformed actions: tests the env's and the rollout's robustness.

    Each action is one of: a call of a random tool with random words of the
    question, an answer with a random word, an unclosed tag, text with no call, or
    the empty string. The tags are the observation's ``stop`` tags.
    """

    name = "random"

    def act(self, observations: Sequence[Observation]) -> list[str]:
        """Return a random action for every episode."""
        return [self._act_one(observation) for observation in observations]

    def settings(self) -> dict[str, Any]:
        """No settings: actions depend only on the episode seed and step."""
        return {}

    def _act_one(self, observation: Observation) -> str:
        rng = random.Random(step_seed(observation.seed, observation.step))
        words = task_of(observation).question.split() or ["nothing"]
        tags = [tag[2:-1] for tag in observation.stop] or [ANSWER_TAG]
        tag = rng.choice(tags)
        phrase = " ".join(rng.choices(words, k=rng.randint(1, 3)))
        kind = rng.choice(["call", "call", "answer", "unclosed", "no-call", "empty"])
        if kind == "call":
            return f"Let me try. <{tag}>{phrase}</{tag}>"
        if kind == "answer":
            return f"<{ANSWER_TAG}>{rng.choice(words)}</{ANSWER_TAG}>"
        if kind == "unclosed":
            return f"<{tag}>{phrase}"
        if kind == "no-call":
            return phrase
        return ""

"""Imperfect experts with systematic misconceptions: the warm-up data of the demo's base model.

A base model trained on uniformly noisy gold trajectories is near-perfect under
greedy decoding (the right step stays the most likely one), so RL has nothing to
fix there. Real base models also hold *systematic* misconceptions. These scripted
policies produce both kinds of error, through the real env so every tool result is
real, and the episode continues from whatever a wrong step produced:

- ``MathMisconceptionPolicy`` (SynthMath): a step worded with a confused phrasing
  (``give_away`` read as ``+``) uses the wrong operator with probability ``q``;
  any other step is corrupted with probability ``p`` (``corrupt_action``). Later
  steps compute on the value the calculator actually returned.
- ``HopMisconceptionPolicy`` (SynthHop): a confused relation (``born_in`` read as
  ``lives_in``) is followed instead with probability ``q``, so the chain goes on
  from the wrong entity; other steps are corrupted with probability ``p``.

Every draw comes from ``step_seed(observation.seed, step)``, as in the other
scripted policies, so an episode depends only on its seed.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from typing import Any

from swirl_agents.policies.base import Observation, step_seed
from swirl_agents.policies.scripted import corrupt_action
from swirl_envs.actions import ANSWER_TAG
from swirl_envs.tasks.synth_hop import World
from swirl_envs.tasks.synth_math import PHRASINGS, apply_operator

_RESULT = re.compile(r" -> (\S+)\s*$")


class _MisconceptionPolicy:
    """Shared checks and the step loop; subclasses say what the expert does at a step."""

    name = "misconception-oracle"

    def __init__(self, confusions: Mapping[str, str], q: float, p: float):
        for label, value in (("q", q), ("p", p)):
            if not 0 <= value <= 1:
                raise ValueError(f"{label} must be in [0, 1], got {value}.")
        self.confusions = dict(confusions)
        self.q, self.p = q, p

    def settings(self) -> dict[str, Any]:
        """The confusions and both error rates, stored with every trajectory."""
        return {"confusions": self.confusions, "q": self.q, "p": self.p}

    def act(self, observations: Sequence[Observation]) -> list[str]:
        """The expert's (possibly mistaken) action of every episode."""
        return [self._act_one(observation) for observation in observations]

    def _act_one(self, observation: Observation) -> str:
        raise NotImplementedError


class MathMisconceptionPolicy(_MisconceptionPolicy):
    """SynthMath expert that misreads the ``confusions`` phrasings (key -> wrong operator).

    Args:
        confusions: Phrasing key -> the operator it is wrongly read as.
        q: Probability of the misconception at a confused step.
        p: Probability of a uniform corruption at any other step.
    """

    def __init__(self, confusions: Mapping[str, str], q: float = 0.7, p: float = 0.1):
        unknown = sorted(set(confusions) - set(PHRASINGS))
        if unknown:
            raise ValueError(f"unknown SynthMath phrasings {unknown}; known: {sorted(PHRASINGS)}")
        super().__init__(confusions, q, p)

    def _act_one(self, observation: Observation) -> str:
        meta = observation.task.meta
        rng = random.Random(step_seed(observation.seed, observation.step))
        value = _last_result(observation) or str(meta["values"][0])
        if observation.step >= len(meta["phrasings"]):
            action = f"<{ANSWER_TAG}>{value}</{ANSWER_TAG}>"
            return corrupt_action(action, observation, rng) if rng.random() < self.p else action
        key = meta["phrasings"][observation.step]
        operand = meta["operands"][observation.step]
        operator = PHRASINGS[key].operator
        confused = self.confusions.get(key)
        if confused is not None:
            # Kept right when the wrong operator would leave the integers (a rare case).
            if rng.random() < self.q and _valid(confused, value, operand):
                operator = confused
            return f"<math_exp>{value} {operator} {operand}</math_exp>"
        action = f"<math_exp>{value} {operator} {operand}</math_exp>"
        return corrupt_action(action, observation, rng) if rng.random() < self.p else action


class HopMisconceptionPolicy(_MisconceptionPolicy):
    """SynthHop expert that follows the wrong relation for the ``confusions`` keys.

    Args:
        world: The env's world (``SynthHopEnv.world``), to follow a wrong relation.
        confusions: Relation -> the relation it is confused with (same domain and range).
        q: Probability of the misconception at each confused hop.
        p: Probability of a uniform corruption at any other step.
    """

    def __init__(self, world: World, confusions: Mapping[str, str], q: float = 0.7, p: float = 0.1):
        from swirl_envs.tasks.synth_hop import RELATIONS

        for right, wrong in confusions.items():
            if right not in RELATIONS or wrong not in RELATIONS:
                raise ValueError(
                    f"unknown relation in {right!r} -> {wrong!r}; known: {sorted(RELATIONS)}"
                )
            a, b = RELATIONS[right], RELATIONS[wrong]
            if (a.domain, a.range) != (b.domain, b.range):
                raise ValueError(f"{right!r} and {wrong!r} link different entity types")
        super().__init__(confusions, q, p)
        self.world = world

    def _act_one(self, observation: Observation) -> str:
        meta = observation.task.meta
        relations = meta["relations"]
        chain = self._chain(observation.seed, meta["entities"][0], relations)
        rng = random.Random(step_seed(observation.seed, observation.step))
        rng.random()  # the draw _chain spent on this step's hop
        step = observation.step
        if step >= len(relations):
            action = f"<{ANSWER_TAG}> {chain[-1]}</{ANSWER_TAG}>"
        else:
            action = f"<search_query> {chain[step]}</search_query>"
        # A step that names the result of a confused hop carries the misconception only.
        confused = step >= 1 and relations[min(step, len(relations)) - 1] in self.confusions
        if confused or rng.random() >= self.p:
            return action
        return corrupt_action(action, observation, rng)

    def _chain(self, seed: int, start: str, relations: Sequence[str]) -> list[str]:
        """The entities the expert visits: a confused hop follows the wrong relation with prob. q.

        Hop ``j``'s draw is the first of step ``j + 1``'s stream (the step that uses its
        result), so replaying the chain at any step gives the same entities.
        """
        chain = [start]
        for hop, relation in enumerate(relations):
            draw = random.Random(step_seed(seed, hop + 1)).random()
            if relation in self.confusions and draw < self.q:
                relation = self.confusions[relation]
            chain.append(self.world.entities[chain[-1]].facts[relation])
        return chain


def _last_result(observation: Observation) -> str | None:
    """The last tool result in the transcript (``A op B -> R`` gives ``R``), or None."""
    for message in reversed(observation.messages):
        if message.get("role") == "user":
            match = _RESULT.search(message.get("content", ""))
            if match:
                return match.group(1)
    return None


def _valid(operator: str, value: str, operand: int) -> bool:
    try:
        number = int(value)
    except ValueError:
        return False
    return number >= 0 and apply_operator(operator, number, operand) is not None

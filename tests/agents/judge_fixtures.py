"""Shared helpers for the judge and filter tests: scripted episodes and a counting judge."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from swirl_agents.judges.base import Judgement, OutcomeQuery, ProcessQuery
from swirl_agents.policies.base import Observation
from swirl_agents.rollout import rollout
from swirl_agents.trajectory import Trajectory
from swirl_envs.env import SwirlEnv


class ScriptPolicy:
    """Plays a fixed list of actions per task id (the rollout engine records the episodes)."""

    name = "script"

    def __init__(self, actions: Mapping[str, Sequence[str]]):
        self.actions = actions

    def act(self, observations: Sequence[Observation]) -> list[str]:
        return [self.actions[o.task.id][o.step] for o in observations]


def play(env: SwirlEnv, scripts: Mapping[int, Sequence[str]]) -> list[Trajectory]:
    """Run each script on the task at its index; trajectories come back in index order."""
    by_id = {env.tasks[index].id: actions for index, actions in scripts.items()}
    subset = SwirlEnv(
        [env.tasks[index] for index in scripts],
        env.tools,
        system_prompt=env.system_prompt,
        max_steps=env.max_steps,
        scorer=env.scorer,
    )
    result = rollout(subset, ScriptPolicy(by_id), progress=False)
    order = {env.tasks[index].id: n for n, index in enumerate(scripts)}
    return sorted(result.trajectories, key=lambda t: order[t.task_id])


class CountingJudge:
    """A judge whose verdict is written in the text it judges; it records every query.

    ``GOOD``/``BAD`` in an action (``YES``/``NO`` in a prediction) decide; anything
    else is unparseable, like garbage from a model.
    """

    def __init__(self, name: str = "counting", template: str = "v1"):
        self.name = name
        self.template = template
        self.process_calls: list[ProcessQuery] = []
        self.outcome_calls: list[OutcomeQuery] = []

    def signature(self, kind: str) -> str:
        return f"{kind}:{self.template}"

    def judge_process(self, queries: Sequence[ProcessQuery]) -> list[Judgement]:
        self.process_calls += queries
        return [self._verdict(query.action, "GOOD", "BAD") for query in queries]

    def judge_outcome(self, queries: Sequence[OutcomeQuery]) -> list[Judgement]:
        self.outcome_calls += queries
        return [self._verdict(query.prediction or "", "YES", "NO") for query in queries]

    def _verdict(self, text: str, positive: str, negative: str) -> Judgement:
        good = True if positive in text else False if negative in text else None
        return Judgement(good, None if good is None else float(good), text, self.name)

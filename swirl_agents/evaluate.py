"""Evaluation: a model's accuracy on an env's test split, overall and by problem group.

Episodes are rolled out into a ``TrajectoryStore`` (so a killed evaluation resumes)
and scored by the env. Accuracy is reported overall and split by a predicate on the
task metadata; the demo splits by "misconception" problems (those whose phrasings or
relations the base model was taught wrongly) versus the others.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from swirl_agents.trajectory import Trajectory


def accuracy_report(
    trajectories: Iterable[Trajectory],
    group: Callable[[Mapping[str, Any]], bool] | None = None,
) -> dict[str, Any]:
    """Accuracy overall and, with ``group``, on the tasks it selects (``in_group``) and the rest.

    Args:
        trajectories: Scored episodes (``score`` 1 is correct); ``meta["task"]`` is the
            task's metadata, as the rollout stores it.
        group: Predicate on task metadata (for example ``uses_confusion``).
    """
    rows = list(trajectories)
    report: dict[str, Any] = {"episodes": len(rows), "accuracy": _mean(t.score for t in rows)}
    if group is not None:
        inside = [t for t in rows if group(t.meta.get("task", {}))]
        outside = [t for t in rows if not group(t.meta.get("task", {}))]
        report.update(
            in_group=_mean(t.score for t in inside),
            in_group_episodes=len(inside),
            out_group=_mean(t.score for t in outside),
            out_group_episodes=len(outside),
        )
    return report


def evaluate_model(
    model_path: str | os.PathLike,
    env,
    *,
    temperature: float,
    store_path: str | os.PathLike,
    seed: int = 0,
    batch_size: int = 64,
    max_new_tokens: int = 48,
    device: str | None = None,
    num_tasks: int | None = None,
    group: Callable[[Mapping[str, Any]], bool] | None = None,
    prompt_format: str = "auto",
) -> dict[str, Any]:
    """Roll out one episode per test task with the model and report its accuracy.

    Args:
        model_path: A ``from_pretrained`` path.
        env: The test env.
        temperature: 0 for greedy decoding, else the sampling temperature.
        store_path: Trajectories are appended here; stored episodes are not rerun.
        seed: Episode seed (sampling draws depend on it).
        batch_size: Live episodes per batched generate call.
        max_new_tokens: Longest action in tokens.
        device: Torch device; the local GPU when None and one exists.
        num_tasks: Evaluate the first ``num_tasks`` tasks only (all by default).
        group: Predicate on task metadata for the split accuracy.
        prompt_format: The input layout the model was trained with (``HFPolicy``).
    """
    from swirl_agents.policies import SamplingSettings
    from swirl_agents.policies.hf import HFPolicy
    from swirl_agents.rollout import rollout
    from swirl_agents.store import TrajectoryStore, load_trajectories

    sampling = SamplingSettings(temperature=temperature, max_new_tokens=max_new_tokens)
    policy = HFPolicy.from_pretrained(
        str(model_path), device=device, sampling=sampling, prompt_format=prompt_format
    )
    with TrajectoryStore(store_path) as store:
        rollout(
            env,
            policy,
            batch_size=batch_size,
            seed=seed,
            num_tasks=num_tasks,
            store=store,
            keep=False,
        )
    report = accuracy_report(load_trajectories(store_path), group)
    report.update(model=str(model_path), temperature=temperature)
    return report


def _mean(values: Iterable[float]) -> float:
    values = list(values)
    return sum(values) / len(values) if values else float("nan")

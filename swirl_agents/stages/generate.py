"""Stage 1: roll a policy out on envs into a crash-safe trajectory store."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from swirl_agents.stages.errors import StageError
from swirl_agents.stages.shards import Shard


def generate(
    envs: Any | Sequence[Any],
    policy: Any,
    out: str | os.PathLike,
    *,
    samples: int = 1,
    seed: int = 0,
    batch_size: int = 32,
    num_tasks: int | None = None,
    progress: bool = False,
    fsync: bool = True,
    shard: Shard | None = None,
) -> dict[str, Any]:
    """Roll out ``samples`` episodes per task (the first ``num_tasks`` of each env) into ``out``.

    With ``shard``, only that shard's ``(task, sample)`` pairs are run, each exactly as in
    the whole run, and ``OUT.shard.json`` records what the shard must hold when done, for
    ``merge_shards``.

    Episodes already in the store are skipped, so a killed generation resumes and ends
    with the file an uninterrupted one writes. A store that holds another policy's
    episodes, or episodes of other env settings, is refused: resuming would mix runs.

    Returns:
        A JSON-ready summary: ``episodes`` in the store, ``episodes_run_now``,
        ``episodes_resumed`` (skipped), ``completion_tokens`` and a one-line ``summary``.

    Raises:
        StageError: ``out`` holds episodes of another run (or of another shard).
    """
    from swirl_agents.rollout import rollout
    from swirl_agents.stages.shards import claim_output
    from swirl_agents.store import TrajectoryStore

    env_list = list(envs) if isinstance(envs, list | tuple) else [envs]
    record = _shard_record(env_list, policy, shard, samples, seed, num_tasks) if shard else None
    with TrajectoryStore(out, fsync=fsync) as store:
        if len(store):
            _check_same_run(out, policy, env_list)
        claim_output(out, record, len(store))
        result = rollout(
            env_list,
            policy,
            samples=samples,
            batch_size=batch_size,
            seed=seed,
            num_tasks=num_tasks,
            select=None if shard is None else lambda task_id, sample: (task_id, sample) in shard,
            store=store,
            progress=progress,
            keep=False,
        )
        total = len(store)
    return {
        "episodes": total,
        "episodes_run_now": result.summary.episodes,
        "episodes_resumed": result.summary.skipped,
        "completion_tokens": result.summary.completion_tokens,
        "summary": f"{total} trajectories; {result.summary.format()}",
    }


def close_policy(policy: Any) -> None:
    """Release what a policy holds (an endpoint policy's connections); others hold nothing."""
    close = getattr(policy, "close", None)
    if callable(close):
        close()


def _shard_record(
    envs: list[Any], policy: Any, shard: Shard, samples: int, seed: int, num_tasks: int | None
) -> dict[str, Any]:
    """What makes shards one run: the same envs, policy, samples and seed (not batch size)."""
    from swirl_agents.policies import describe_policy
    from swirl_agents.rollout import episode_keys, stored_env_settings
    from swirl_agents.stages.shards import shard_record

    run = {
        "envs": [
            {"env_id": env.spec.id if env.spec else None, "env_kwargs": stored_env_settings(env)}
            for env in envs
        ],
        "policy": policy_identity(describe_policy(policy)),
        "samples": samples,
        "seed": seed,
        "num_tasks": num_tasks,
    }
    keys = episode_keys(envs, samples=samples, num_tasks=num_tasks)
    return shard_record("generate", shard, keys, run)


DEPLOYMENT_KEYS = ("url",)
"""Policy settings that say where a served model runs, not what it is: a run may resume, or
its shards run, on other replicas of the same model."""


def policy_identity(description: dict[str, Any]) -> dict[str, Any]:
    """A policy's description (as stored) without its deployment: what makes two runs one."""
    stored = json.loads(json.dumps(description))
    return {key: value for key, value in stored.items() if key not in DEPLOYMENT_KEYS}


def _check_same_run(path: str | os.PathLike, policy: Any, envs: list[Any]) -> None:
    from swirl_agents.policies import describe_policy
    from swirl_agents.rollout import stored_env_settings
    from swirl_agents.store import load_trajectories

    first = next(load_trajectories(path))
    settings = {env.spec.id: stored_env_settings(env) for env in envs if env.spec is not None}
    ours = describe_policy(policy)
    if policy_identity(first.policy) != policy_identity(ours):
        raise StageError(
            f"{path} holds episodes of policy {first.policy}, not {ours}; rerun with the same "
            "arguments to resume, or write to another file"
        )
    if first.env_id in settings and first.env_kwargs != settings[first.env_id]:
        raise StageError(
            f"{path} holds episodes of {first.env_id} with settings {first.env_kwargs}, not "
            f"{settings[first.env_id]}; rerun with the same arguments to resume, or write to "
            "another file"
        )

"""``make_env``: the one way every stage, command and script builds an env from its id."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import gymnasium as gym

import swirl_envs  # noqa: F401  (registers the env ids)
from swirl_agents.stages.errors import StageError, one_line


def make_env(
    env_id: str,
    env_kwargs: Mapping[str, Any] | None = None,
    *,
    split: str | None = None,
    num_tasks: int | None = None,
    seed: int | None = None,
) -> gym.Env:
    """The env ``env_id`` with ``env_kwargs``, for one split and size.

    A generated env (one whose constructor takes ``num_tasks``) makes ``num_tasks``
    questions from ``seed``; a data env (``data_path=``) loads its split, and the
    stages use its first ``num_tasks``. So one call works for every registered id.

    Raises:
        StageError: Unknown id, a setting the env does not take, or data it cannot load
            (the loader's message: which file, which line, where to get it).
    """
    kwargs = dict(env_kwargs or {})
    if split is not None:
        kwargs["split"] = split
    try:
        if "num_tasks" in inspect.signature(_env_class(env_id)).parameters:
            if num_tasks is not None:
                kwargs.setdefault("num_tasks", num_tasks)
            if seed is not None:
                kwargs.setdefault("seed", seed)
        return gym.make(env_id, **kwargs)
    except (gym.error.Error, TypeError, ValueError, OSError) as error:
        settings = f" with {kwargs}" if kwargs else ""
        raise StageError(f"cannot make env {env_id!r}{settings}: {one_line(error)}") from error


def eval_split(env_id: str) -> str:
    """The held-out split the env declares for evaluation (``test``, or ``dev`` for QA data).

    Raises:
        StageError: Unknown id.
    """
    try:
        return getattr(_env_class(env_id), "eval_split", "test")
    except gym.error.Error as error:
        raise StageError(f"unknown env {env_id!r}: {one_line(error)}") from error


def _env_class(env_id: str) -> Any:
    entry = gym.spec(env_id).entry_point
    return gym.envs.registration.load_env_creator(entry) if isinstance(entry, str) else entry

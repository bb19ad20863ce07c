"""Evaluation: a policy's accuracy on an env's tasks, its effort, and (optionally) a judge's view.

Episodes are rolled out into a ``TrajectoryStore`` (a killed evaluation resumes) and
scored by the env: accuracy (EM or numeric equality), F1 where the env reports it,
mean steps and tool calls, tokens, and, with an outcome judge, judge accuracy (the
paper's metric). With ``group`` the accuracy is also split by a predicate on the
task metadata (the demo's "misconception" problems against the others).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from swirl_agents.stages.errors import StageError
from swirl_agents.trajectory import Trajectory


def model_policy(
    path: str | os.PathLike,
    *,
    temperature: float = 0.0,
    max_new_tokens: int = 48,
    device: str | None = None,
    prompt_format: str | None = None,
) -> Any:
    """An ``HFPolicy`` for a checkpoint, laying prompts out as the model was trained to read them.

    Args:
        path: A ``from_pretrained`` folder or name.
        temperature: 0 for greedy decoding, else the sampling temperature.
        max_new_tokens: Longest action in tokens.
        device: Torch device (default: a GPU when there is one).
        prompt_format: ``text``, ``chat`` or ``auto``; None: the one recorded with the
            checkpoint by ``swirl train`` (``auto`` for a model trained elsewhere).
    """
    from swirl_agents.policies import SamplingSettings
    from swirl_agents.policies.hf import HFPolicy

    if prompt_format is None:
        prompt_format = trained_prompt_format(path) or "auto"
    sampling = SamplingSettings(temperature=temperature, max_new_tokens=max_new_tokens)
    try:
        return HFPolicy.from_pretrained(
            str(path), device=device, sampling=sampling, prompt_format=prompt_format
        )
    except OSError as error:
        raise StageError(f"cannot load the model {str(path)!r}: {error}") from None


def trained_prompt_format(path: str | os.PathLike) -> str | None:
    """The prompt format a checkpoint was trained with, when training recorded it."""
    from swirl_agents.train.checkpoint import read_training_record

    record = read_training_record(path) if Path(path).is_dir() else None
    return None if record is None else record.get("prompt_format")


def evaluate(
    env: Any,
    policy: Any,
    store_path: str | os.PathLike,
    *,
    samples: int = 1,
    seed: int = 0,
    batch_size: int = 32,
    num_tasks: int | None = None,
    group: Callable[[Mapping[str, Any]], bool] | None = None,
    judge: Any = None,
    judged_path: str | os.PathLike | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Roll ``policy`` out on the first ``num_tasks`` tasks of ``env`` and score the episodes.

    Args:
        env: The evaluation env.
        policy: Any policy.
        store_path: Episodes are appended here; stored ones are not rerun.
        samples: Episodes per task.
        seed: Run seed (sampling draws depend on it).
        batch_size: Live episodes at once.
        num_tasks: Evaluate the first ``num_tasks`` tasks (all by default).
        group: Predicate on task metadata for the split accuracy.
        judge: ``JudgeSettings`` of an outcome judge, for judge accuracy.
        judged_path: Where the judged episodes go (default: beside ``store_path``).
        progress: Show a progress bar.

    Returns:
        ``score_episodes``' report, plus ``episodes_run_now``, ``episodes_resumed``,
        ``mean_tokens_per_episode`` (when the policy counts tokens) and ``summary``.
    """
    from swirl_agents.stages.generate import generate
    from swirl_agents.stages.judge import judge as judge_stage
    from swirl_agents.store import load_trajectories

    stats = getattr(policy, "stats", None)
    before = (stats.prompt_tokens, stats.completion_tokens) if stats is not None else None
    run = generate(
        env, policy, store_path, samples=samples, seed=seed, batch_size=batch_size,
        num_tasks=num_tasks, progress=progress,
    )  # fmt: skip
    tasks = env.unwrapped.tasks[:num_tasks]
    by_key = {t.key: t for t in load_trajectories(store_path)}
    episodes = [by_key[task.id, sample] for task in tasks for sample in range(samples)]
    verdicts = None
    if judge is not None:
        judged_path = Path(judged_path or Path(store_path).with_suffix(".judged.jsonl"))
        judge_stage(
            episodes, judged_path, judge, cache=judged_path.with_suffix(".sqlite"),
            log=lambda _: None,
        )  # fmt: skip
        verdicts = _outcome_verdicts(judged_path, episodes)
    report = score_episodes(episodes, verdicts, group)
    report["episodes_run_now"] = run["episodes_run_now"]
    report["episodes_resumed"] = run["episodes_resumed"]
    if stats is not None and run["episodes_run_now"]:
        count = run["episodes_run_now"]
        report["mean_tokens_per_episode"] = {
            "prompt": (stats.prompt_tokens - before[0]) / count,
            "completion": (stats.completion_tokens - before[1]) / count,
            "episodes_counted": count,
        }
    report["summary"] = f"accuracy {report['accuracy']:.3f} on {report['episodes']} episodes" + (
        f" (in group {report['in_group']:.3f}, others {report['out_group']:.3f})"
        if group is not None
        else ""
    )
    return report


def score_episodes(
    trajectories: Sequence[Trajectory],
    verdicts: Sequence[bool | None] | None = None,
    group: Callable[[Mapping[str, Any]], bool] | None = None,
) -> dict[str, Any]:
    """Accuracy and effort over episodes; an episode that never answered scores 0.

    Args:
        trajectories: The evaluated episodes.
        verdicts: An outcome judge's verdict per episode (None: unparseable, counted as
            wrong and reported); omit when no judge ran.
        group: Predicate on task metadata (``meta["task"]``): adds ``in_group`` and
            ``out_group`` accuracy and their episode counts.

    Raises:
        StageError: No episodes.
    """
    count = len(trajectories)
    if not count:
        raise StageError("no episodes to score (is the data file empty?)")

    def mean(values: Sequence[float]) -> float:
        return sum(values) / len(values) if values else float("nan")

    scores: dict[str, Any] = {
        "episodes": count,
        "questions": len({t.task_id for t in trajectories}),
        "accuracy": mean([t.score for t in trajectories]),
        "f1": None,
        "judge_accuracy": None,
        "judge_unparseable": None,
        "answered": mean([float(t.terminated) for t in trajectories]),
        "mean_steps": mean([len(t.steps) for t in trajectories]),
        "mean_tool_calls": mean([sum(s.tool is not None for s in t.steps) for t in trajectories]),
    }
    if any("f1" in t.metrics for t in trajectories):
        scores["f1"] = mean([t.metrics.get("f1", 0.0) for t in trajectories])
    if verdicts is not None:
        scores["judge_accuracy"] = mean([float(v is True) for v in verdicts])
        scores["judge_unparseable"] = sum(v is None for v in verdicts)
    if group is not None:
        inside = [t for t in trajectories if group(t.meta.get("task", {}))]
        outside = [t for t in trajectories if not group(t.meta.get("task", {}))]
        scores.update(
            in_group=mean([t.score for t in inside]),
            in_group_episodes=len(inside),
            out_group=mean([t.score for t in outside]),
            out_group_episodes=len(outside),
        )
    return scores


def _outcome_verdicts(path: Path, episodes: Sequence[Trajectory]) -> list[bool | None]:
    """The outcome verdict of each episode, in ``episodes``' order."""
    from swirl_agents.judges import JudgedTrajectory
    from swirl_agents.store import load_trajectories

    verdicts = {}
    for stored in load_trajectories(path):
        outcome = JudgedTrajectory.from_trajectory(stored).outcome
        verdicts[stored.key] = None if outcome is None else outcome.good
    return [verdicts[t.key] for t in episodes]

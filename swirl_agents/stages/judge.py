"""Judging: process (each step given its state) and/or outcome (the final answer) verdicts.

Judged trajectories are appended to a ``TrajectoryStore`` chunk by chunk, so a killed
run resumes where it stopped; every verdict can also be kept in a SQLite cache, so a
rerun over the same steps (another output, another filter) pays for nothing twice.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from swirl_agents.stages.errors import StageError
from swirl_agents.stages.shards import Shard
from swirl_agents.trajectory import Trajectory


@dataclass(frozen=True)
class JudgeSettings:
    """Which judges to run and how to run model judges.

    Attributes:
        process: Process judge spec (each step): programmatic, hf:PATH or openai:URL.
        outcome: Outcome judge spec (each final answer), the same kinds.
        judge_model: The served model's name, for openai: judges.
        hf_mode: hf: judges: ``generate`` (parse a written verdict) or ``logits`` (P(GOOD)).
        batch_size: hf: judges: queries per forward pass.
        max_new_tokens: Model judges: output budget.
        concurrency: openai: judges: requests in flight.
        device: hf: judges: torch device (default: a GPU when there is one).
        process_prompt: ``auto`` (the paper's math prompt for envs with a calculator, else
            its search prompt), ``search``, ``math``, or a prompt file.
        outcome_prompt: ``auto``, ``qa``, ``math``, or a prompt file.
    """

    process: str | None = None
    outcome: str | None = None
    judge_model: str | None = None
    hf_mode: str = "generate"
    batch_size: int = 8
    max_new_tokens: int = 256
    concurrency: int = 8
    device: str | None = None
    process_prompt: str = "auto"
    outcome_prompt: str = "auto"

    def check(self) -> None:
        """Refuse settings that cannot run, before any work is done.

        Raises:
            StageError: No judge, an unknown spec, or an openai: judge without a model name.
        """
        from swirl_agents.judges.factory import judge_backend

        if not (self.process or self.outcome):
            raise StageError("give a process judge, an outcome judge, or both")
        for kind, spec in (("process", self.process), ("outcome", self.outcome)):
            if spec is None:
                continue
            try:
                backend, _ = judge_backend(spec)
            except ValueError as error:
                raise StageError(str(error)) from None
            if backend == "openai" and not self.judge_model:
                raise StageError(
                    f"an openai: judge ({kind}) needs --judge-model (the served model's name)"
                )


def judge(
    source: str | os.PathLike | Iterable[Trajectory],
    out: str | os.PathLike,
    settings: JudgeSettings,
    *,
    env_id: str | None = None,
    env_kwargs: dict[str, Any] | None = None,
    cache: str | os.PathLike | None = None,
    chunk: int = 64,
    log=print,
    shard: Shard | None = None,
) -> dict[str, Any]:
    """Judge every trajectory of ``source`` not yet in ``out``; returns a JSON-ready summary.

    With ``shard``, only that shard's trajectories (by ``(task_id, sample)``) are judged,
    and ``OUT.shard.json`` records what the shard must hold when done, for ``merge_shards``.

    Args:
        source: A trajectory file, or the trajectories themselves.
        out: Judged trajectories (``meta["judgements"]``), appended.
        settings: The judges.
        env_id: The env the trajectories are judged against (default: each one's own).
        env_kwargs: Its settings, with ``env_id`` (default: each trajectory's own).
        cache: A SQLite verdict cache (None: no cache).
        chunk: Trajectories judged per write (a kill loses at most one chunk).
        log: Where progress lines go.
        shard: Judge only this shard of ``source``.

    Raises:
        StageError: Bad settings, an env that cannot be built, judges that do not fit
            the tasks (no programmatic rule for them, say), or an ``out`` of another shard.
    """
    from swirl_agents.judges import JudgementCache, judge_trajectories
    from swirl_agents.stages.shards import claim_output, shard_record
    from swirl_agents.store import TrajectoryStore, load_trajectories

    settings.check()
    if chunk < 1:
        raise StageError(f"chunk must be at least 1, got {chunk}")
    if env_kwargs is not None and env_id is None:
        raise StageError("env settings go with an env id")
    if isinstance(source, str | os.PathLike):
        trajectories = list(load_trajectories(source))
    else:
        trajectories = list(source)
    record = None
    if shard is not None:
        run = {"settings": _verdict_settings(settings), "env_id": env_id, "env_kwargs": env_kwargs}
        record = shard_record("judge", shard, [t.key for t in trajectories], run)
        trajectories = [t for t in trajectories if t.key in shard]
    judges = _Judges(settings, env_id, env_kwargs)
    verdict_cache = JudgementCache(cache) if cache is not None else None
    totals = _Totals()
    try:
        with TrajectoryStore(out) as store:
            claim_output(out, record, len(store))
            todo = [t for t in trajectories if t.key not in store]
            for start in range(0, len(todo), chunk):
                part = todo[start : start + chunk]
                judged = {}
                for env_key, items in judges.by_env(part).items():
                    process, outcome = judges.for_env(env_key)
                    for item in judge_trajectories(items, process, outcome, verdict_cache):
                        judged[item.trajectory.key] = item
                ordered = [judged[t.key] for t in part]
                store.append(item.to_trajectory() for item in ordered)
                totals.add(ordered)
                log(f"judged {start + len(part)}/{len(todo)} trajectories")
    except StageError:
        raise
    except ValueError as error:  # judges that do not fit the tasks, bad data
        raise StageError(str(error)) from error
    finally:
        judges.close()
        if verdict_cache is not None:
            verdict_cache.close()
    summary = totals.summary(len(todo), len(trajectories) - len(todo))
    if verdict_cache is not None:
        summary += (
            f"; cache {verdict_cache.path}: {verdict_cache.hits} hits, "
            f"{verdict_cache.misses} misses"
        )
    return {
        "trajectories": len(trajectories),
        "judged_now": len(todo),
        **totals.counts_by_name(),
        "summary": summary,
    }


def _verdict_settings(settings: JudgeSettings) -> dict[str, Any]:
    """The settings that decide verdicts (shards of one run share them), not how fast they come."""
    chosen = asdict(settings)
    for speed_only in ("batch_size", "concurrency", "device"):
        chosen.pop(speed_only)
    return chosen


class _Judges:
    """Each env's judges, built once; a model judge's weights are loaded once for all envs."""

    def __init__(self, settings: JudgeSettings, env_id: str | None, env_kwargs: dict | None):
        self.settings = settings
        self.env_id = env_id
        self.env_kwargs = env_kwargs
        self._envs: dict[tuple[str, str], Any] = {}
        self._judges: dict[tuple[tuple[str, str], str], Any] = {}
        self._models: dict[str, Any] = {}

    def by_env(self, trajectories: list[Trajectory]) -> dict[tuple[str, str], list[Trajectory]]:
        """Group trajectories by the env (id and settings) they are judged against."""
        groups: dict[tuple[str, str], list[Trajectory]] = {}
        for trajectory in trajectories:
            env_id = self.env_id or trajectory.env_id
            kwargs = self.env_kwargs if self.env_id else trajectory.env_kwargs
            key = (env_id, json.dumps(kwargs or {}, sort_keys=True))
            groups.setdefault(key, []).append(trajectory)
        return groups

    def for_env(self, env_key: tuple[str, str]) -> tuple[Any, Any]:
        """``(process_judge, outcome_judge)`` for trajectories of ``env_key``."""
        return (
            self._judge(env_key, "process", self.settings.process),
            self._judge(env_key, "outcome", self.settings.outcome),
        )

    def close(self) -> None:
        """Close the judges that hold connections (endpoint judges)."""
        for judge_ in self._judges.values():
            if hasattr(judge_, "close"):
                judge_.close()

    def _judge(self, env_key: tuple[str, str], kind: str, spec: str | None) -> Any:
        if spec is None:
            return None
        if (env_key, kind) not in self._judges:
            self._judges[env_key, kind] = self._build(env_key, kind, spec)
        return self._judges[env_key, kind]

    def _build(self, env_key: tuple[str, str], kind: str, spec: str) -> Any:
        from swirl_agents.judges import make_judge

        settings = self.settings
        target = spec.partition(":")[2]
        hf = {
            "mode": settings.hf_mode,
            "batch_size": settings.batch_size,
            "max_new_tokens": settings.max_new_tokens,
            "device": settings.device,
        }
        loaded = self._models.get(target) if spec.startswith("hf:") else None
        if loaded is not None:  # one model in memory serves every env and kind
            hf.update(model=loaded.model, tokenizer=loaded.tokenizer)
            hf.pop("device")
        openai = {
            "model": settings.judge_model,
            "concurrency": settings.concurrency,
            "max_tokens": settings.max_new_tokens,
        }
        try:
            judge_ = make_judge(
                spec, self._env(env_key), hf=hf, openai=openai, **self._prompts(env_key, kind)
            )
        except ValueError as error:
            raise StageError(f"{kind} judge {spec}: {error}") from None
        if spec.startswith("hf:"):
            self._models.setdefault(target, judge_)
        return judge_

    def _prompts(self, env_key: tuple[str, str], kind: str) -> dict[str, Any]:
        """The paper's search/QA or math prompt (``auto``: math for calculator envs), or a file."""
        from swirl_agents.judges.prompts import (
            MATH_OUTCOME_PROMPT,
            MATH_PROCESS_PROMPT,
            OUTCOME_PROMPT,
            PROCESS_PROMPT,
            default_prompts,
        )

        key = f"{kind}_prompt"
        choice = getattr(self.settings, key)
        if choice == "auto":
            return {key: default_prompts(self._env(env_key))[key]}
        text_prompt, math_prompt = {
            "process": (PROCESS_PROMPT, MATH_PROCESS_PROMPT),
            "outcome": (OUTCOME_PROMPT, MATH_OUTCOME_PROMPT),
        }[kind]
        if choice in ("qa", "search", "math"):
            return {key: math_prompt if choice == "math" else text_prompt}
        try:
            text = Path(choice).read_text(encoding="utf-8")
        except OSError as error:
            raise StageError(f"cannot read the {kind} prompt file {choice!r}: {error}") from None
        return {key: replace(text_prompt, template=text, direct_template=text)}

    def _env(self, env_key: tuple[str, str]) -> Any:
        from swirl_agents.stages.envs import make_env

        if env_key not in self._envs:
            env_id, kwargs = env_key
            self._envs[env_key] = make_env(env_id, json.loads(kwargs)).unwrapped
        return self._envs[env_key]


class _Totals:
    """Counts of verdicts over the run, for the closing summary."""

    def __init__(self):
        self.counts = {kind: {True: 0, False: 0, None: 0} for kind in ("process", "outcome")}

    def add(self, judged: list) -> None:
        for item in judged:
            for judgement in item.process or []:
                self.counts["process"][judgement.good] += 1
            if item.outcome is not None:
                self.counts["outcome"][item.outcome.good] += 1

    def counts_by_name(self) -> dict[str, dict[str, int]]:
        names = {True: "good", False: "bad", None: "unparseable"}
        return {
            kind: {names[verdict]: count for verdict, count in counts.items()}
            for kind, counts in self.counts.items()
        }

    def summary(self, judged: int, skipped: int) -> str:
        parts = [f"judged {judged} trajectories ({skipped} already in the output)"]
        for kind, names in (("process", "steps"), ("outcome", "answers")):
            good, bad, unparseable = (self.counts[kind][v] for v in (True, False, None))
            if good + bad + unparseable:
                parts.append(f"{kind}: {good} good, {bad} bad, {unparseable} unparseable {names}")
        return "; ".join(parts)

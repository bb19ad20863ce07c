"""``swirl judge``: judge the steps and final answers of stored trajectories.

::

    swirl judge --in runs/trajectories.jsonl --out runs/judged.jsonl \\
        --process hf:runs/judge-model --outcome programmatic

Judges are ``programmatic`` (checks against the task; needs the env),
``hf:PATH`` (a local model) or ``openai:URL`` (an OpenAI-compatible endpoint, with
``--judge-model``). The run is resumable: judged episodes are appended to ``--out``
as they finish, a rerun skips the ones already there, and every verdict is kept in
a SQLite cache (``--cache``, by default next to ``--out``), so nothing is paid twice.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

PROCESS_CHOICES = "programmatic | hf:PATH | openai:URL"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``swirl judge``."""
    parser = subparsers.add_parser(
        "judge",
        help="judge trajectories' steps (process) and final answers (outcome)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--in", dest="input", required=True, help="trajectories (JSONL)")
    parser.add_argument("--out", required=True, help="judged trajectories (JSONL, appended)")
    parser.add_argument("--process", help=f"process judge: {PROCESS_CHOICES}")
    parser.add_argument("--outcome", help=f"outcome judge: {PROCESS_CHOICES}")
    parser.add_argument(
        "--env",
        help="env id the trajectories came from (default: each trajectory's own env_id)",
    )
    parser.add_argument(
        "--env-kwargs",
        type=json.loads,
        help="JSON object of env settings with --env (default: the trajectory's env_kwargs)",
    )
    parser.add_argument("--cache", help="judgement cache (default: OUT.cache.sqlite)")
    parser.add_argument("--no-cache", action="store_true", help="do not cache judgements")
    parser.add_argument("--judge-model", help="model name for openai: judges")
    parser.add_argument(
        "--hf-mode",
        choices=("generate", "logits"),
        default="generate",
        help="hf: judges: parse a generated verdict, or read P(GOOD) from the logits",
    )
    parser.add_argument("--batch-size", type=int, default=8, help="hf: queries per forward pass")
    parser.add_argument("--max-new-tokens", type=int, default=256, help="judge output budget")
    parser.add_argument("--concurrency", type=int, default=8, help="openai: requests in flight")
    parser.add_argument(
        "--process-prompt",
        default="auto",
        help="'search', 'math', 'auto' (math for envs with a calculator) or a prompt file",
    )
    parser.add_argument(
        "--outcome-prompt",
        default="auto",
        help="'qa', 'math', 'auto' (math for envs with a calculator) or a prompt file",
    )
    parser.add_argument("--chunk", type=int, default=64, help="trajectories judged per write")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Judge every trajectory of ``--in`` not yet in ``--out``; print a summary."""
    from swirl_agents.judges import JudgementCache, judge_trajectories
    from swirl_agents.store import TrajectoryStore, load_trajectories

    if not (args.process or args.outcome):
        raise SystemExit("swirl judge: give --process, --outcome or both")
    if args.chunk < 1:
        raise SystemExit("swirl judge: --chunk must be at least 1")
    if args.env_kwargs is not None and not args.env:
        raise SystemExit("swirl judge: --env-kwargs goes with --env")
    trajectories = list(load_trajectories(args.input))
    factory = _JudgeFactory(args)
    cache = None if args.no_cache else JudgementCache(args.cache or f"{args.out}.cache.sqlite")
    totals = _Totals()
    try:
        with TrajectoryStore(args.out) as store:
            todo = [t for t in trajectories if t.key not in store]
            for start in range(0, len(todo), args.chunk):
                chunk = todo[start : start + args.chunk]
                judged = {}
                for env_key, items in _by_env(chunk, args).items():
                    process, outcome = factory.judges(env_key)
                    for item in judge_trajectories(items, process, outcome, cache):
                        judged[item.trajectory.key] = item
                ordered = [judged[t.key] for t in chunk]
                store.append(item.to_trajectory() for item in ordered)
                totals.add(ordered)
                print(f"judged {start + len(chunk)}/{len(todo)} trajectories", flush=True)
    except ValueError as error:  # wrong env for the tasks, no programmatic rule, bad data
        raise SystemExit(f"swirl judge: {error}") from error
    finally:
        factory.close()
        if cache is not None:
            cache.close()
    print(totals.summary(len(todo), len(trajectories) - len(todo)))
    if cache is not None:
        print(f"cache {cache.path}: {cache.hits} hits, {cache.misses} misses")
    return 0


def _by_env(chunk: list, args: argparse.Namespace) -> dict[tuple[str, str], list]:
    """Group trajectories by the env (id and settings) they must be judged against."""
    groups: dict[tuple[str, str], list] = {}
    for trajectory in chunk:
        env_id = args.env or trajectory.env_id
        kwargs = args.env_kwargs if args.env else trajectory.env_kwargs
        key = (env_id, json.dumps(kwargs or {}, sort_keys=True))
        groups.setdefault(key, []).append(trajectory)
    return groups


class _JudgeFactory:
    """Builds each env's judges once; model weights are loaded once for all envs."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self._envs: dict[tuple[str, str], Any] = {}
        self._judges: dict[tuple[tuple[str, str], str], Any] = {}
        self._models: dict[str, Any] = {}

    def close(self) -> None:
        """Close the judges that hold connections (endpoint judges)."""
        for judge in self._judges.values():
            if hasattr(judge, "close"):
                judge.close()

    def judges(self, env_key: tuple[str, str]) -> tuple[Any, Any]:
        """``(process_judge, outcome_judge)`` for trajectories of ``env_key``."""
        return (
            self._judge(env_key, "process", self.args.process),
            self._judge(env_key, "outcome", self.args.outcome),
        )

    def _judge(self, env_key: tuple[str, str], kind: str, spec: str | None) -> Any:
        if spec is None:
            return None
        if (env_key, kind) not in self._judges:
            self._judges[env_key, kind] = self._build(env_key, kind, spec)
        return self._judges[env_key, kind]

    def _build(self, env_key: tuple[str, str], kind: str, spec: str) -> Any:
        from swirl_agents.judges import make_judge

        args = self.args
        if spec.startswith("openai:") and not args.judge_model:
            raise SystemExit("swirl judge: openai: judges need --judge-model")
        target = spec.partition(":")[2]
        loaded = self._models.get(target) if spec.startswith("hf:") else None
        hf = {
            "mode": args.hf_mode,
            "batch_size": args.batch_size,
            "max_new_tokens": args.max_new_tokens,
        }
        if loaded is not None:  # one model in memory serves every env and kind
            hf.update(model=loaded.model, tokenizer=loaded.tokenizer)
        openai = {
            "model": args.judge_model,
            "concurrency": args.concurrency,
            "max_tokens": args.max_new_tokens,
        }
        try:
            judge = make_judge(
                spec, self._env(env_key), hf=hf, openai=openai, **self._prompts(env_key, kind)
            )
        except ValueError as error:
            raise SystemExit(f"swirl judge: --{kind}: {error}") from None
        if spec.startswith("hf:"):
            self._models.setdefault(target, judge)
        return judge

    def _prompts(self, env_key: tuple[str, str], kind: str) -> dict[str, Any]:
        """The paper's search/QA or math prompt (``auto``: math for calculator envs), or a file."""
        from dataclasses import replace

        from swirl_agents.judges.prompts import (
            MATH_OUTCOME_PROMPT,
            MATH_PROCESS_PROMPT,
            OUTCOME_PROMPT,
            PROCESS_PROMPT,
            default_prompts,
        )

        key = f"{kind}_prompt"
        choice = getattr(self.args, key)
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
            raise SystemExit(
                f"swirl judge: cannot read --{kind}-prompt {choice!r}: {error}"
            ) from None
        return {key: replace(text_prompt, template=text, direct_template=text)}

    def _env(self, env_key: tuple[str, str]) -> Any:
        if env_key not in self._envs:
            import gymnasium as gym

            import swirl_envs  # noqa: F401  (registers the env ids)

            env_id, kwargs = env_key
            try:
                self._envs[env_key] = gym.make(env_id, **json.loads(kwargs)).unwrapped
            except Exception as error:
                raise SystemExit(
                    f"swirl judge: cannot make env {env_id!r} with {kwargs} ({error}); "
                    "pass --env and --env-kwargs"
                ) from error
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

    def summary(self, judged: int, skipped: int) -> str:
        parts = [f"judged {judged} trajectories ({skipped} already in the output)"]
        for kind, names in (("process", "steps"), ("outcome", "answers")):
            good, bad, unparseable = (self.counts[kind][v] for v in (True, False, None))
            if good + bad + unparseable:
                parts.append(f"{kind}: {good} good, {bad} bad, {unparseable} unparseable {names}")
        return "; ".join(parts)

"""``swirl judge``: judge the steps and final answers of stored trajectories.

::

    swirl judge --in runs/trajectories.jsonl --out runs/judged.jsonl \\
        --process hf:runs/judge-model --outcome programmatic

Judges are ``programmatic`` (checks against the task; needs the env),
``hf:PATH`` (a local model) or ``openai:URL`` (an OpenAI-compatible endpoint, with
``--judge-model``). The run is resumable: judged episodes are appended to ``--out``
as they finish, a rerun skips the ones already there, and every verdict is kept in
a SQLite cache (``--cache``, by default next to ``--out``), so nothing is paid twice.

``--shard I/N`` judges only shard I (0-based) of N of the trajectories, so N machines
share one run; ``swirl merge`` joins their outputs.
"""

from __future__ import annotations

import argparse

from swirl_agents.flags import json_object

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
        type=json_object,
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
    parser.add_argument("--device", help="hf: judges: cuda, cpu, ... (default: cuda if any)")
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
    parser.add_argument(
        "--shard",
        metavar="I/N",
        help="judge only shard I (0-based) of N of the trajectories; join with swirl merge",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Judge every trajectory of ``--in`` not yet in ``--out``; print a summary."""
    from swirl_agents.stages import JudgeSettings, Shard, judge

    shard = Shard.parse(args.shard) if args.shard else None
    if not (args.process or args.outcome):
        raise ValueError("give --process, --outcome or both")
    if args.env_kwargs is not None and not args.env:
        raise ValueError("--env-kwargs goes with --env")
    settings = JudgeSettings(
        process=args.process,
        outcome=args.outcome,
        judge_model=args.judge_model,
        hf_mode=args.hf_mode,
        batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens,
        concurrency=args.concurrency,
        device=args.device,
        process_prompt=args.process_prompt,
        outcome_prompt=args.outcome_prompt,
    )
    summary = judge(
        args.input, args.out, settings, env_id=args.env, env_kwargs=args.env_kwargs,
        cache=None if args.no_cache else (args.cache or f"{args.out}.cache.sqlite"),
        chunk=args.chunk, log=lambda line: print(line, flush=True), shard=shard,
    )  # fmt: skip
    print(summary["summary"])
    return 0

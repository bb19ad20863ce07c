"""``swirl generate``: roll a policy out on envs and store every episode (SWiRL's stage 1).

::

    swirl generate --env swirl/SynthMath-v0 --policy hf:runs/tiny --prompt-format text \\
        --samples 4 --num-tasks 500 --batch-size 32 --temperature 1.0 \\
        --out runs/math/trajectories.jsonl

Policies: ``oracle``, ``noisy-oracle`` (with ``--noise``), ``random``, ``hf:PATH``
(a local or hub model) and ``openai:URL`` (an OpenAI-compatible server, with
``--model``). The run is resumable: episodes are appended to ``--out`` as they
finish, and a rerun with the same arguments skips the ``(task, sample)`` pairs
already there, ending with exactly the file an uninterrupted run writes.

``--shard I/N`` runs only shard I (0-based) of the ``(task, sample)`` pairs, so N
machines share one run; ``swirl merge`` joins their outputs (docs/rollouts.md).
"""

from __future__ import annotations

import argparse

from swirl_agents.flags import json_object
from swirl_agents.policies import POLICY_SPECS


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``swirl generate``."""
    parser = subparsers.add_parser(
        "generate",
        help="roll a policy out on envs and store the trajectories",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--env", action="append", required=True, help="env id (repeatable)")
    parser.add_argument(
        "--env-kwargs", type=json_object, default={}, help="JSON object of env settings"
    )
    parser.add_argument("--split", help="the env's split (passed as the env setting 'split')")
    parser.add_argument(
        "--num-tasks", type=int, help="use the first N tasks of each env (generated envs make N)"
    )
    parser.add_argument(
        "--task-seed", type=int, help="generated envs: the seed their questions are made from"
    )
    parser.add_argument("--policy", required=True, help=POLICY_SPECS)
    parser.add_argument("--out", required=True, help="trajectory store (JSONL, appended)")
    parser.add_argument("--samples", type=int, default=1, help="episodes per task (k)")
    parser.add_argument("--batch-size", type=int, default=32, help="live episodes at once")
    parser.add_argument(
        "--seed", type=int, default=0, help="run seed (per-episode seeds derive from it)"
    )
    sampling = parser.add_argument_group("model policies")
    sampling.add_argument("--temperature", type=float, default=1.0, help="0 for greedy")
    sampling.add_argument("--top-p", type=float, default=1.0)
    sampling.add_argument("--max-new-tokens", type=int, default=256, help="cap per action")
    sampling.add_argument(
        "--stop", action="append", default=[], help="stop string (default: the env's closing tags)"
    )
    sampling.add_argument("--noise", type=float, default=0.3, help="noisy-oracle: step error rate")
    local = parser.add_argument_group("hf: policies")
    local.add_argument("--device", help="cuda, cpu, ... (default: cuda when available)")
    local.add_argument("--dtype", help="bfloat16, float32, ... (default: bf16 on cuda)")
    local.add_argument(
        "--prompt-format",
        choices=("auto", "text", "chat"),
        default="auto",
        help="transcript text, chat template, or chat when the tokenizer has a template",
    )
    remote = parser.add_argument_group("openai: policies")
    remote.add_argument("--model", help="the served model's name")
    remote.add_argument("--api", choices=("chat", "completions"), default="chat")
    remote.add_argument("--api-key-env", default="OPENAI_API_KEY", help="env var with the key")
    remote.add_argument("--concurrency", type=int, default=8, help="requests in flight")
    remote.add_argument("--timeout", type=float, default=60.0, help="seconds per attempt")
    remote.add_argument("--max-retries", type=int, default=4)
    parser.add_argument(
        "--shard",
        metavar="I/N",
        help="run only shard I (0-based) of N of the (task, sample) pairs; join with swirl merge",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--no-fsync", action="store_true", help="skip fsync after each write")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Generate the missing episodes into ``--out`` and print a summary."""
    from swirl_agents.policies import SamplingSettings, make_policy
    from swirl_agents.stages import Shard, close_policy, generate, make_env

    shard = Shard.parse(args.shard) if args.shard else None
    envs = [
        make_env(env_id, args.env_kwargs, split=args.split, num_tasks=args.num_tasks,
                 seed=args.task_seed)
        for env_id in args.env
    ]  # fmt: skip
    sampling = SamplingSettings(
        temperature=args.temperature,
        top_p=args.top_p,
        max_new_tokens=args.max_new_tokens,
        stop=tuple(args.stop),
    )
    policy = make_policy(
        args.policy,
        sampling=sampling,
        noise=args.noise,
        hf={"device": args.device, "dtype": args.dtype, "prompt_format": args.prompt_format},
        openai={
            "model": args.model,
            "api": args.api,
            "api_key_env": args.api_key_env,
            "concurrency": args.concurrency,
            "timeout": args.timeout,
            "max_retries": args.max_retries,
        },
    )
    try:
        summary = generate(
            envs, policy, args.out, samples=args.samples, batch_size=args.batch_size,
            seed=args.seed, num_tasks=args.num_tasks, progress=not args.no_progress,
            fsync=not args.no_fsync, shard=shard,
        )  # fmt: skip
    finally:
        close_policy(policy)
    print(summary["summary"])
    print(f"trajectories: {args.out}")
    return 0

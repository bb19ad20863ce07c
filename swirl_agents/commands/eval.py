"""``swirl eval``: a model's accuracy on an env's tasks under one or more decodings.

::

    swirl eval --model runs/demo/seed-0/math/swirl/final --env swirl/SynthMath-v0 \\
        --env-kwargs '{"max_ops": 4}' --num-tasks 300 --temperatures 0 1 --out runs/eval
    swirl eval --model runs/gsm8k/swirl/final --env swirl/GSM8K-v0 \\
        --env-kwargs '{"data_path": "data/gsm8k"}' --split test --out runs/eval-gsm8k

Works on every registered env: generated ones make ``--num-tasks`` questions from
``--task-seed``; data envs (``data_path``) load their split and evaluate its first
``--num-tasks``. Prompts are laid out as the model was trained (recorded with the
checkpoint by ``swirl train``) unless ``--prompt-format`` says otherwise. Writes
``OUT/tT/trajectories.jsonl`` (resumable) and ``OUT/eval.json``; prints one line per
decoding.
"""

from __future__ import annotations

import argparse

from swirl_agents.flags import json_object


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``swirl eval``."""
    parser = subparsers.add_parser(
        "eval",
        help="evaluate a model on an env's held-out tasks (greedy and/or sampled)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", required=True, help="from_pretrained path or name")
    parser.add_argument("--env", required=True, help="registered env id")
    parser.add_argument(
        "--env-kwargs", type=json_object, default={}, help="env settings as a JSON object"
    )
    parser.add_argument(
        "--split", help="split (default: the env's held-out split: test, or dev for QA data)"
    )
    parser.add_argument("--num-tasks", type=int, help="questions (default: all of the split)")
    parser.add_argument(
        "--task-seed", type=int, default=1000, help="generated envs: question seed (default 1000)"
    )
    parser.add_argument("--seed", type=int, default=0, help="episode seed (sampling)")
    parser.add_argument("--temperatures", type=float, nargs="+", default=[0.0, 1.0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--device", help="cpu or cuda (default: the GPU when there is one)")
    parser.add_argument(
        "--prompt-format",
        choices=("auto", "text", "chat"),
        help="input layout (default: the one recorded with the checkpoint, else auto)",
    )
    parser.add_argument("--out", default="runs/eval", help="output folder")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Evaluate under each temperature and write ``eval.json``."""
    from pathlib import Path

    from swirl_agents.stages import evaluate, make_env, model_policy, write_json
    from swirl_agents.stages.envs import eval_split

    split = args.split or eval_split(args.env)
    env = make_env(
        args.env, args.env_kwargs, split=split, num_tasks=args.num_tasks, seed=args.task_seed
    )
    out = Path(args.out)
    reports = {}
    for temperature in args.temperatures:
        policy = model_policy(
            args.model, temperature=temperature, max_new_tokens=args.max_new_tokens,
            device=args.device, prompt_format=args.prompt_format,
        )  # fmt: skip
        report = evaluate(
            env, policy, out / f"t{temperature:g}" / "trajectories.jsonl", seed=args.seed,
            batch_size=args.batch_size, num_tasks=args.num_tasks,
        )  # fmt: skip
        report.update(model=args.model, temperature=temperature)
        reports[f"{temperature:g}"] = report
        print(f"T={temperature:g}: {report['summary']}")
    write_json(out / "eval.json", reports)
    print(f"results written to {out / 'eval.json'}")
    return 0

"""``swirl eval``: a model's accuracy on an env's test split under one or more decodings.

::

    swirl eval --model runs/demo/seed-0/math/swirl/final --env swirl/SynthMath-v0 \\
        --env-kwargs '{"max_ops": 4}' --num-tasks 300 --temperatures 0 1 --out runs/eval

Writes ``OUT/tT/trajectories.jsonl`` (resumable) and ``OUT/eval.json``; prints one line
per decoding.
"""

from __future__ import annotations

import argparse
import json


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``swirl eval``."""
    parser = subparsers.add_parser(
        "eval",
        help="evaluate a model on an env's test split (greedy and/or sampled)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", required=True, help="from_pretrained path or name")
    parser.add_argument("--env", required=True, help="registered env id")
    parser.add_argument("--env-kwargs", default="{}", help="env settings as a JSON object")
    parser.add_argument("--split", default="test", help="split (default: test)")
    parser.add_argument("--num-tasks", type=int, default=300, help="questions (default: 300)")
    parser.add_argument("--task-seed", type=int, default=1000, help="question generation seed")
    parser.add_argument("--seed", type=int, default=0, help="episode seed (sampling)")
    parser.add_argument("--temperatures", type=float, nargs="+", default=[0.0, 1.0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--device", help="cpu or cuda (default: the GPU when there is one)")
    parser.add_argument("--out", default="runs/eval", help="output folder")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Evaluate under each temperature and write ``eval.json``; 2 on bad arguments."""
    try:
        env_kwargs = json.loads(args.env_kwargs)
    except ValueError as error:
        print(f"swirl eval: --env-kwargs is not JSON: {error}")
        return 2
    if not isinstance(env_kwargs, dict):
        print("swirl eval: --env-kwargs must be a JSON object")
        return 2
    from pathlib import Path

    import gymnasium as gym

    import swirl_envs  # noqa: F401  (registers the env ids)
    from swirl_agents.evaluate import evaluate_model
    from swirl_agents.pipeline import write_json

    env = gym.make(
        args.env, split=args.split, num_tasks=args.num_tasks, seed=args.task_seed, **env_kwargs
    )
    out = Path(args.out)
    reports = {}
    for temperature in args.temperatures:
        report = evaluate_model(
            args.model, env, temperature=temperature,
            store_path=out / f"t{temperature:g}" / "trajectories.jsonl", seed=args.seed,
            batch_size=args.batch_size, max_new_tokens=args.max_new_tokens, device=args.device,
        )  # fmt: skip
        reports[f"{temperature:g}"] = report
        print(
            f"T={temperature:g}: accuracy {report['accuracy']:.3f} on {report['episodes']} episodes"
        )
    write_json(out / "eval.json", reports)
    print(f"results written to {out / 'eval.json'}")
    return 0

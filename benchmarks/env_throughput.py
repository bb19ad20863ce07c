"""Steps per second of each environment driven by a scripted agent (its gold path).

Usage:
    python benchmarks/env_throughput.py                       # the generated envs
    python benchmarks/env_throughput.py --env swirl/GSM8K-v0 \
        --env-kwargs '{"data_path": "test.jsonl"}'

Measures the env alone (parsing, tools, scoring, transcript), with no model in the loop.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import gymnasium as gym

import swirl_envs  # noqa: F401  (registers the ids)
from swirl_agents.flags import add_flags, from_flags


@dataclass
class Args:
    envs: list[str] = field(default_factory=lambda: ["swirl/SynthMath-v0", "swirl/SynthHop-v0"])
    """Environment ids to measure."""
    env_kwargs: dict = field(default_factory=dict)
    """Extra kwargs passed to every env (e.g. data_path)."""
    episodes: int = 2000
    """Episodes per env (each replays a gold path)."""
    seed: int = 0
    out: str = "results/env_throughput.json"


def measure(env_id: str, args: Args) -> dict:
    """Replay gold paths for ``args.episodes`` episodes and time it."""
    env = gym.make(env_id, **args.env_kwargs).unwrapped
    steps = correct = 0
    start = time.perf_counter()
    env.reset(seed=args.seed)
    for episode in range(args.episodes):
        env.reset(options={"index": episode % len(env.tasks)})
        for action in env.task.gold_path:
            _, reward, terminated, truncated, _ = env.step(action)
            steps += 1
        correct += int(reward == 1.0)
    seconds = time.perf_counter() - start
    return {
        "env": env_id,
        "episodes": args.episodes,
        "steps": steps,
        "seconds": seconds,
        "steps_per_s": steps / seconds,
        "episodes_per_s": args.episodes / seconds,
        "gold_accuracy": correct / args.episodes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_flags(parser, Args, aliases={"envs": ["--env"]})
    args = from_flags(Args, parser.parse_args())
    rows = [measure(env_id, args) for env_id in args.envs]
    print(f"{'env':24s} {'steps/s':>10s} {'episodes/s':>11s} {'gold acc':>9s}")
    for row in rows:
        print(
            f"{row['env']:24s} {row['steps_per_s']:10.0f} {row['episodes_per_s']:11.0f}"
            f" {row['gold_accuracy']:9.3f}"
        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    result = {
        "args": asdict(args),
        "machine": platform.processor() or platform.machine(),
        "rows": rows,
    }
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

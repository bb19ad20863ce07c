"""Rollout throughput with a tiny model: actions/s by batch size, and where the time goes.

Usage::

    python benchmarks/rollout_speed.py --save-model runs/bench-tiny   # batch 1 vs 32
    python benchmarks/rollout_speed.py --model runs/bench-tiny --batch-sizes 1 8 32 64
    python benchmarks/rollout_speed.py --warmup-steps 0                # random weights
    python benchmarks/rollout_speed.py --tiny-kwargs '{"hidden_size": 512, "num_kv_heads": 2}'

Every batch size runs the same episodes (``num_tasks`` tasks x ``samples``) in the
same process, through the full engine: ``HFPolicy`` generation, env steps, tool
calls and a trajectory store with fsync. The targets (issue 5): actions/s at batch
32 at least 8x batch 1, and env + tool + store time under 10% of wall time at
batch 32.

Without ``--model`` a tiny model is built for the env and fine-tuned for
``--warmup-steps`` steps with the project's SFT trainer on oracle trajectories, so
that it writes well-formed actions that call the calculator, stop at the closing
tag, and take about as many tokens as a trained policy's. (With random weights,
``--warmup-steps 0``, actions are malformed, never stop early and rarely reach a
tool: a poor stand-in for a policy.) The warm-up takes a few minutes on a CPU;
``--save-model`` keeps the result for later runs.

Prints a table and writes JSON (default ``results/rollout_speed.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch

import swirl_envs  # noqa: F401  (registers the ids)
from swirl_agents.flags import add_flags, from_flags
from swirl_agents.policies import OraclePolicy, SamplingSettings
from swirl_agents.policies.hf import HFPolicy
from swirl_agents.rollout import rollout
from swirl_agents.store import TrajectoryStore
from swirl_agents.tiny import build_tiny_model, tiny_corpus


@dataclass
class Args:
    """Arguments of the benchmark."""

    env: str = "swirl/SynthMath-v0"
    """Environment id."""
    env_kwargs: dict = field(default_factory=lambda: {"num_tasks": 200})
    """Settings passed to ``gym.make``."""
    num_tasks: int = 192
    """Tasks measured (the first N of the env)."""
    samples: int = 1
    """Episodes per task."""
    batch_sizes: list[int] = field(default_factory=lambda: [1, 32])
    """Batch sizes compared; the first is the baseline of the speed-up column."""
    model: str | None = None
    """A model directory to use instead of a freshly built tiny model."""
    tiny_kwargs: dict = field(default_factory=dict)
    """Shape of the tiny model built without ``--model`` (``build_tiny_model`` settings)."""
    warmup_steps: int = 300
    """SFT steps on oracle trajectories before measuring (tiny model only; 0 for random weights)."""
    save_model: str | None = None
    """Keep the model that was measured here, to pass as ``--model`` next time."""
    temperature: float = 1.0
    """Sampling temperature of the policy."""
    max_new_tokens: int = 32
    """Cap on one action's tokens."""
    threads: int = 1
    """torch CPU threads (on a shared machine one thread is fastest for a tiny model)."""
    device: str = "cpu"
    """Where the model runs."""
    seed: int = 0
    """Run seed and tiny-model seed."""
    out: str = "results/rollout_speed.json"
    """Where to write the JSON results."""


def prepare_model(args: Args, env: gym.Env, workdir: Path) -> str:
    """The model directory to measure: ``args.model``, or a tiny model (optionally warmed up)."""
    if args.model:
        return args.model
    path = build_tiny_model(
        workdir / "tiny", tiny_corpus([env]), seed=args.seed, **args.tiny_kwargs
    )
    if args.warmup_steps <= 0:
        return str(path)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from swirl_agents.train import TrainConfig, Trainer

    oracle = rollout(env, OraclePolicy(), samples=1, seed=args.seed, progress=False)
    config = TrainConfig(
        model=str(path),
        objective="sft",
        prompt_format="text",
        steps=args.warmup_steps,
        batch_size=16,
        micro_batch_size=16,
        lr=3e-3,
        out_dir=str(workdir / "warmup"),
        device=args.device,
        progress=False,
        seed=args.seed,
    )
    model = AutoModelForCausalLM.from_pretrained(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    Trainer(config, model, tokenizer, oracle.trajectories).train()
    return str(workdir / "warmup" / "final")


def measure(args: Args, env: gym.Env, model_path: str, batch_size: int, workdir: Path) -> dict:
    """One full rollout at ``batch_size`` into a fresh store; returns its summary as a dict."""
    policy = HFPolicy.from_pretrained(
        model_path,
        sampling=SamplingSettings(temperature=args.temperature, max_new_tokens=args.max_new_tokens),
        prompt_format="text",
        device=args.device,
    )
    store_path = workdir / f"trajectories-b{batch_size}.jsonl"
    with TrajectoryStore(store_path) as store:
        result = rollout(
            env,
            policy,
            samples=args.samples,
            batch_size=batch_size,
            seed=args.seed,
            num_tasks=args.num_tasks,
            store=store,
            progress=False,
            keep=False,
        )
    summary = result.summary
    tool_calls = sum(
        1 for line in store_path.read_text().splitlines() for step in json.loads(line)["steps"]
        if step["tool"]
    )  # fmt: skip
    return {
        "batch_size": batch_size,
        "episodes": summary.episodes,
        "actions": summary.actions,
        "tool_calls": tool_calls,
        "accuracy": summary.accuracy,
        "seconds": summary.seconds,
        "actions_per_s": summary.actions_per_second,
        "episodes_per_s": summary.episodes_per_second,
        "tokens_per_s": summary.tokens_per_second,
        "policy_seconds": summary.policy_seconds,
        "env_seconds": summary.env_seconds,
        "store_seconds": summary.store_seconds,
        "other_seconds": summary.seconds
        - summary.policy_seconds
        - summary.env_seconds
        - summary.store_seconds,
        "overhead": summary.overhead,
    }


def print_table(rows: list[dict[str, Any]]) -> None:
    """Print one line per batch size."""
    header = (
        f"{'batch':>5} {'actions':>7} {'tools':>6} {'acc':>5} {'wall s':>7} {'actions/s':>9} "
        f"{'tokens/s':>8} {'speed-up':>8} {'policy s':>8} {'env s':>6} {'store s':>7} "
        f"{'overhead':>8}"
    )
    print(header)
    print("-" * len(header))
    base = rows[0]["actions_per_s"]
    for row in rows:
        print(
            f"{row['batch_size']:>5} {row['actions']:>7} {row['tool_calls']:>6} "
            f"{row['accuracy']:>5.2f} {row['seconds']:>7.1f} {row['actions_per_s']:>9.1f} "
            f"{row['tokens_per_s']:>8.0f} {row['actions_per_s'] / base:>7.1f}x "
            f"{row['policy_seconds']:>8.1f} {row['env_seconds']:>6.2f} "
            f"{row['store_seconds']:>7.2f} {100 * row['overhead']:>7.1f}%"
        )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Parse arguments, run every batch size, print the table and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_flags(parser, Args)
    args = from_flags(Args, parser.parse_args(argv))
    torch.set_num_threads(args.threads)
    env = gym.make(args.env, **args.env_kwargs)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        started = time.perf_counter()
        model_path = prepare_model(args, env, workdir)
        preparation = time.perf_counter() - started
        if args.save_model:
            shutil.copytree(model_path, args.save_model, dirs_exist_ok=True)
        rows = [measure(args, env, model_path, size, workdir) for size in args.batch_sizes]
    print_table(rows)
    speedup = rows[-1]["actions_per_s"] / rows[0]["actions_per_s"]
    largest, smallest = rows[-1]["batch_size"], rows[0]["batch_size"]
    print(
        f"\nbatch {largest} vs {smallest}: {speedup:.1f}x actions/s; env+tool+store "
        f"overhead at batch {largest}: {100 * rows[-1]['overhead']:.1f}%"
    )
    results = {
        "args": asdict(args),
        "rows": rows,
        "speedup": speedup,
        "overhead_at_largest_batch": rows[-1]["overhead"],
        "model_preparation_seconds": preparation,
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpus": os.cpu_count(),
            "load_average": os.getloadavg(),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
        },
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")
    return results


if __name__ == "__main__":
    main()

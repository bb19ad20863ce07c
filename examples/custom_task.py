"""Add a task of your own: a new tool, a task generator, an env, registered and trained with SWiRL.

    python examples/custom_task.py           # a tiny model on the CPU, a few minutes
    python examples/custom_task.py --quick   # the CI run: tiny sizes, ~1 minute

The task is unit conversion ("How many minutes are in 3 days?"). The new tool,
``UnitTable``, looks one unit up in a small table of conversion factors (a plain
dictionary: model text is never evaluated); the agent multiplies with the
library's calculator. Each task carries its gold path and declares it the only
sound one (``unique_sound_path=True``: each lookup and each multiplication is
forced), so the library's programmatic judge checks every step against it and the loop of
``examples/train_your_model.py`` runs unchanged: warm a tiny model up on an
imperfect expert, sample, judge, keep the trajectories whose steps are all good,
train with offline step-wise RL, compare test accuracy before and after.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import gymnasium as gym
import torch
from gymnasium.utils.env_checker import check_env

from swirl_agents.policies import NoisyOraclePolicy
from swirl_agents.stages import (
    JudgeSettings,
    evaluate,
    filter_file,
    generate,
    judge,
    model_policy,
    train,
)
from swirl_agents.tiny import build_tiny_model, tiny_corpus
from swirl_agents.train import TrainConfig
from swirl_envs import Task, check_tasks
from swirl_envs.env import SwirlEnv
from swirl_envs.scoring import math_scores
from swirl_envs.tools.base import Tool, ToolResult
from swirl_envs.tools.calculator import Calculator

CONVERSIONS = {  # unit: (the next smaller unit, how many of it make one)
    "weeks": ("days", 7), "days": ("hours", 24), "hours": ("minutes", 60),
    "yards": ("feet", 3), "feet": ("inches", 12),
    "gallons": ("quarts", 4), "quarts": ("pints", 2), "pints": ("cups", 2),
}  # fmt: skip
CHAINS = (("weeks", "days", "hours", "minutes"), ("yards", "feet", "inches"),
          ("gallons", "quarts", "pints", "cups"))  # fmt: skip
PROMPT = "Look units up with <lookup>, compute with <math_exp>, answer with <answer>."


class UnitTable(Tool):
    """Look a unit up: ``weeks -> weeks: 7 days each``."""

    name = "lookup"
    tag = "lookup"
    argument = "unit"
    description = "Look up how many of the next smaller unit make one of this unit."
    argument_description = "a unit in the plural, e.g. 'weeks'"

    def __call__(self, argument: str, task: Task) -> ToolResult:
        """Return the unit's conversion factor, or an error naming the known units."""
        unit = argument.strip().lower()
        if unit not in CONVERSIONS:
            known = ", ".join(CONVERSIONS)
            return ToolResult(f"Error: no unit {unit[:40]!r}; known: {known}.", ok=False)
        smaller, factor = CONVERSIONS[unit]
        return ToolResult(f"{unit}: {factor} {smaller} each")


def make_tasks(split: str) -> list[Task]:
    """Every question with one or two conversions; a fixed fifth of them is the test split."""
    combos = [(chain[i], chain[i + hops], hops, amount)
              for chain in CHAINS for hops in (1, 2) for i in range(len(chain) - hops)
              for amount in range(2, 21)]  # fmt: skip
    random.Random(0).shuffle(combos)
    cut = len(combos) // 5
    chosen = {"test": combos[:cut], "train": combos[cut:]}[split]
    tasks = []
    for number, (start, target, hops, amount) in enumerate(chosen):
        path, value, unit = [], amount, start
        for _ in range(hops):  # look the unit up, then multiply by its factor
            smaller, factor = CONVERSIONS[unit]
            path += [f"<lookup>{unit}</lookup>", f"<math_exp>{value} * {factor}</math_exp>"]
            value, unit = value * factor, smaller
        path.append(f"<answer>{value}</answer>")
        question = f"How many {target} are in {amount} {start}?"
        tasks.append(Task(f"unit-{split}-{number}", question, (str(value),), tuple(path),
                          unique_sound_path=True))  # fmt: skip
    return tasks


class UnitConvertEnv(SwirlEnv):
    """``custom/UnitConvert-v0``: unit conversions with a lookup table and a calculator."""

    def __init__(self, split: str = "train", max_steps: int = 6, render_mode: str | None = None):
        tools = [UnitTable(), Calculator()]
        super().__init__(make_tasks(split), tools, system_prompt=PROMPT, max_steps=max_steps,
                         scorer=math_scores, render_mode=render_mode)  # fmt: skip


gym.register("custom/UnitConvert-v0", entry_point=UnitConvertEnv)

# (train questions, samples per question k, warm-up steps and batch, SWiRL steps, test questions)
SIZES = {"full": (None, 4, 400, 64, 100, None), "quick": (48, 2, 200, 8, 8, 24)}


def main() -> None:
    """Check the env and replay its gold paths (``check_tasks``), then run SWiRL on a tiny model."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for CI")
    parser.add_argument("--out", default="runs/custom_task", help="output folder")
    args = parser.parse_args()
    num_train, k, warmup_steps, warmup_batch, swirl_steps, num_test = SIZES[
        "quick" if args.quick else "full"
    ]
    out = Path(args.out)
    torch.set_num_threads(1)  # a model this small runs fastest on one core

    train_env = gym.make("custom/UnitConvert-v0", split="train")
    test_env = gym.make("custom/UnitConvert-v0", split="test")
    check_env(train_env.unwrapped)  # the gymnasium API
    for env in (train_env, test_env):  # the data: every gold path must score 1
        print(check_tasks(env).format())  # raises TaskCheckError naming each failing task and why

    settings = {"batch_size": 8, "micro_batch_size": 8, "prompt_format": "text",
                "progress": False, "resume": True}  # fmt: skip
    model = str(build_tiny_model(out / "tiny", tiny_corpus([train_env])))
    warmup = out / "warmup.jsonl"
    expert = NoisyOraclePolicy(0.3)  # the gold path, 30% of its steps wrong
    generate(train_env, expert, warmup, samples=1, seed=0, batch_size=256, num_tasks=num_train)
    sft = TrainConfig(**settings | dict(
        model=model, data=str(warmup), out_dir=str(out / "base"), objective="sft",
        steps=warmup_steps, lr=2e-3, batch_size=warmup_batch,
        micro_batch_size=min(warmup_batch, 16),
    ))  # fmt: skip
    model = train(sft)["model"]

    policy = model_policy(model, temperature=1.0, max_new_tokens=32, prompt_format="text")
    samples = out / "samples.jsonl"
    stage1 = generate(train_env, policy, samples, samples=k, seed=0, batch_size=64,
                      num_tasks=num_train)  # fmt: skip
    print(stage1["summary"])
    # The programmatic judge checks each step against the gold path (the tasks declare it
    # the only sound one), then the process filter keeps the all-good trajectories.
    judge(samples, out / "judged.jsonl", JudgeSettings(process="programmatic"))
    kept = filter_file(out / "judged.jsonl", out / "filtered.jsonl", "process")
    print(kept["summary"])
    if not kept["kept"]:
        raise SystemExit("no trajectory passed the process filter: sample more (or warm up longer)")
    swirl = TrainConfig(**settings, model=model, data=str(out / "filtered.jsonl"),
                        out_dir=str(out / "swirl"), objective="swirl-offline",
                        steps=swirl_steps, lr=5e-4)  # fmt: skip
    swirl_model = train(swirl)["model"]

    print(f"{'model':<8} {'greedy':>7} {'T=1':>7}")  # uniform noise shows when sampling
    for name, path in (("before", model), ("after", swirl_model)):
        accuracy = [
            evaluate(
                test_env, model_policy(path, temperature=temperature, prompt_format="text"),
                out / f"eval-{name}-t{temperature:g}.jsonl", num_tasks=num_test, batch_size=64,
            )["accuracy"]
            for temperature in (0.0, 1.0)
        ]  # fmt: skip
        print(f"{name:<8} {accuracy[0]:>7.3f} {accuracy[1]:>7.3f}")


if __name__ == "__main__":
    main()

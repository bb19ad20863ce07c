"""Run SWiRL on your own Hugging Face causal LM: sample, judge, filter, train, compare.

    python examples/train_your_model.py --model PATH_OR_NAME   # any local causal LM
    python examples/train_your_model.py --tiny                 # build a tiny model first (CPU)
    python examples/train_your_model.py --tiny --quick         # the CI run: tiny sizes, ~1 minute

The loop is the paper's, on SynthMath word problems (no download):

1. stage 1: k episodes per training question, sampled at temperature 1;
2. the programmatic process judge marks every step GOOD or BAD;
3. the process filter keeps the trajectories whose steps are all GOOD;
4. stage 2: offline step-wise RL on them (each action weighted by its judge score);
5. test accuracy, greedy and sampled at T = 1, before and after.

A randomly initialised ``--tiny`` model writes no valid step, so SWiRL would have
nothing to keep: it is first warmed up by supervised fine-tuning on an imperfect
expert (the gold path with 30% of its steps wrong), which stands in for the
pretrained model you would bring. Uniform noise like this hardly shows under greedy
decoding (the right step stays the most likely one) but does when sampling, so both
are reported. Every stage writes under ``--out`` and a rerun
resumes where a killed one stopped.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from swirl_agents.policies import NoisyOraclePolicy
from swirl_agents.stages import (
    JudgeSettings,
    evaluate,
    filter_file,
    generate,
    judge,
    make_env,
    model_policy,
    train,
)
from swirl_agents.tiny import build_tiny_model, tiny_corpus
from swirl_agents.train import TrainConfig

# (train questions, samples per question k, warm-up steps and batch, SWiRL steps, test questions)
SIZES = {"full": (500, 4, 400, 64, 150, 200), "quick": (48, 2, 200, 8, 8, 24)}


def main() -> None:
    """Parse the flags and run the whole loop."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="a local Hugging Face causal LM (path or name)")
    parser.add_argument("--tiny", action="store_true", help="build a tiny random model first")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for CI")
    parser.add_argument("--out", default="runs/train_your_model", help="output folder")
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: a GPU)")
    args = parser.parse_args()
    if bool(args.model) == args.tiny:
        parser.error("give exactly one of --model PATH and --tiny")
    num_train, k, warmup_steps, warmup_batch, swirl_steps, num_test = SIZES[
        "quick" if args.quick else "full"
    ]
    out = Path(args.out)
    env_kwargs = {"min_ops": 2, "max_ops": 3, "max_steps": 5}
    if args.tiny:
        torch.set_num_threads(1)  # a model this small runs fastest on one core
        # A short prompt keeps the tiny model's sequences short; a real model reads the default.
        env_kwargs["system_prompt"] = "Compute with <math_exp>, answer with <answer>."
    train_env = make_env("swirl/SynthMath-v0", env_kwargs, split="train", num_tasks=num_train)
    test_env = make_env("swirl/SynthMath-v0", env_kwargs, split="test", num_tasks=num_test)
    # Every stage resumes: rerun the script after a kill and it goes on where it stopped.
    settings = {"batch_size": 8, "micro_batch_size": 8, "prompt_format": "text",
                "device": args.device, "progress": False, "resume": True}  # fmt: skip

    model = args.model
    if args.tiny:
        model = str(build_tiny_model(out / "tiny", tiny_corpus([train_env])))
        warmup = out / "warmup.jsonl"
        generate(train_env, NoisyOraclePolicy(0.3), warmup, samples=1, seed=0, batch_size=256)
        sft = TrainConfig(**settings | dict(
            model=model, data=str(warmup), out_dir=str(out / "base"), objective="sft",
            steps=warmup_steps, lr=2e-3, batch_size=warmup_batch,
            micro_batch_size=min(warmup_batch, 16),
        ))  # fmt: skip
        model = train(sft)["model"]

    # Stage 1: k samples per training question at temperature 1.
    policy = model_policy(model, temperature=1.0, device=args.device, prompt_format="text")
    samples = out / "samples.jsonl"
    print(generate(train_env, policy, samples, samples=k, seed=0, batch_size=64)["summary"])

    # Judge every step against the task, then keep the trajectories whose steps are all good.
    judge(samples, out / "judged.jsonl", JudgeSettings(process="programmatic"), log=print)
    kept = filter_file(out / "judged.jsonl", out / "filtered.jsonl", "process")
    print(kept["summary"])
    if not kept["kept"]:
        raise SystemExit("no trajectory passed the process filter: sample more (or warm up longer)")

    # Stage 2: offline step-wise RL on the kept trajectories.
    swirl = TrainConfig(**settings, model=model, data=str(out / "filtered.jsonl"),
                        out_dir=str(out / "swirl"), objective="swirl-offline",
                        steps=swirl_steps, lr=5e-4)  # fmt: skip
    swirl_model = train(swirl)["model"]

    # Test accuracy before and after, greedy and sampled at temperature 1.
    print(f"{'model':<8} {'greedy':>7} {'T=1':>7}")
    for name, path in (("before", model), ("after", swirl_model)):
        accuracy = [
            evaluate(
                test_env,
                model_policy(path, temperature=temperature, device=args.device,
                             prompt_format="text"),
                out / f"eval-{name}-t{temperature:g}.jsonl", batch_size=64,
            )["accuracy"]
            for temperature in (0.0, 1.0)
        ]  # fmt: skip
        print(f"{name:<8} {accuracy[0]:>7.3f} {accuracy[1]:>7.3f}")


if __name__ == "__main__":
    main()

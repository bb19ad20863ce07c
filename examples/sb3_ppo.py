"""Train Stable-Baselines3 PPO on a swirl text env, then compare it with a random policy.

The env stays a text env; two wrappers give it the spaces SB3 needs:
``CandidateActions`` (choose one of ``n`` proposed actions: the next gold action and
wrong tool calls and answers) and ``VectorObservation`` (hashed transcript, candidates
and their relation to the transcript). The trained policy is scored on the test split,
whose questions it never saw, against a policy that picks a valid slot at random.

    python examples/sb3_ppo.py --env-id swirl/SynthHop-v0 --total-timesteps 20000
    python examples/sb3_ppo.py --env-id swirl/SynthMath-v0 --algo ppo
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from sb3_contrib import MaskablePPO
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env

import swirl_envs
from swirl_envs.wrappers import CandidateActions, VectorObservation

gym.register_envs(swirl_envs)


@dataclass
class Args:
    env_id: str = "swirl/SynthHop-v0"
    """a swirl env whose tasks have gold paths (SynthHop, SynthMath)"""
    algo: str = "maskable-ppo"
    """"maskable-ppo" (sb3-contrib, never picks an empty slot) or "ppo" (plain SB3)"""
    num_candidates: int = 4
    """actions to choose from at each step"""
    dim: int = 64
    """size of each hashed text vector"""
    embed_candidates: bool = False
    """also give the policy each candidate's hashed vector (slower to learn on these envs)"""
    num_envs: int = 4
    """environments stepped together during training"""
    total_timesteps: int = 20_000
    """environment steps of training"""
    train_tasks: int = 1000
    """questions in the training split"""
    test_tasks: int = 200
    """questions in the test split"""
    eval_episodes: int = 200
    """test episodes per policy"""
    env_kwargs: str = "{}"
    """JSON of extra env arguments for both splits, e.g. '{"max_hops": 2}'"""
    seed: int = 0
    """seed of the training run and of the random baseline's choices"""
    out: str = ""
    """write the results as JSON to this path"""


def make_env(args: Args, split: str) -> gym.Env:
    """A candidate-choice env with vector observations on one split."""
    num_tasks = args.train_tasks if split == "train" else args.test_tasks
    env = gym.make(args.env_id, split=split, num_tasks=num_tasks, **json.loads(args.env_kwargs))
    chooser = CandidateActions(env, args.num_candidates)
    return VectorObservation(chooser, dim=args.dim, embed_candidates=args.embed_candidates)


def train(args: Args) -> PPO:
    """Train the chosen algorithm on the training split."""
    envs = make_vec_env(lambda: make_env(args, "train"), n_envs=args.num_envs, seed=args.seed)
    algorithm = MaskablePPO if args.algo == "maskable-ppo" else PPO
    model = algorithm(
        "MlpPolicy", envs, n_steps=256, batch_size=256, n_epochs=4, learning_rate=1e-3,
        ent_coef=0.01, seed=args.seed, verbose=0,
    )  # fmt: skip
    return model.learn(total_timesteps=args.total_timesteps)


Chooser = Callable[[np.ndarray, np.ndarray], int]
"""Picks a slot from ``(observation vector, action mask)``."""


def evaluate(env: gym.Env, choose: Chooser, episodes: int, seed: int) -> dict[str, float]:
    """Success rate (mean final reward) and mean steps over ``episodes`` test episodes."""
    rewards, steps = [], []
    for episode in range(episodes):
        observation, info = env.reset(seed=seed + episode)
        done, total, count = False, 0.0, 0
        while not done:
            action = choose(observation, info["action_mask"])
            observation, reward, terminated, truncated, info = env.step(action)
            done, total, count = terminated or truncated, total + reward, count + 1
        rewards.append(total)
        steps.append(count)
    return {"success": float(np.mean(rewards)), "mean_steps": float(np.mean(steps))}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Train, evaluate the trained and the random policy on the test split, print the margin."""
    args = parse_args(argv)
    torch.set_num_threads(1)  # a 64-unit MLP: more threads only add synchronisation
    started = time.perf_counter()
    model = train(args)
    train_seconds = time.perf_counter() - started
    test_env = make_env(args, "test")
    rng = np.random.default_rng(args.seed)

    def trained(observation: np.ndarray, mask: np.ndarray) -> int:
        masks = {"action_masks": mask} if args.algo == "maskable-ppo" else {}
        return int(model.predict(observation, deterministic=True, **masks)[0])

    def random(observation: np.ndarray, mask: np.ndarray) -> int:
        return int(rng.choice(np.flatnonzero(mask)))

    results = {
        "args": dataclasses.asdict(args),
        "train_seconds": train_seconds,
        "trained": evaluate(test_env, trained, args.eval_episodes, seed=10_000),
        "random": evaluate(test_env, random, args.eval_episodes, seed=10_000),
    }
    results["margin"] = results["trained"]["success"] - results["random"]["success"]
    print(f"{args.algo} on {args.env_id}, {args.total_timesteps} steps ({train_seconds:.0f} s)")
    print(f"{'policy':8s} {'test success':>12s} {'mean steps':>10s}")
    for name in ("trained", "random"):
        print(f"{name:8s} {results[name]['success']:12.3f} {results[name]['mean_steps']:10.2f}")
    print(f"margin over random: {results['margin']:+.3f}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=2))
    return results


def parse_args(argv: Sequence[str] | None) -> Args:
    """Read ``Args`` from the command line (each field is a ``--flag``)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for field in dataclasses.fields(Args):
        flag = "--" + field.name.replace("_", "-")
        if isinstance(field.default, bool):
            parser.add_argument(flag, action="store_true")
        else:
            parser.add_argument(flag, type=type(field.default), default=field.default)
    args = Args(**vars(parser.parse_args(argv)))
    if args.algo not in ("maskable-ppo", "ppo"):
        parser.error(f"--algo must be maskable-ppo or ppo, got {args.algo!r}")
    return args


if __name__ == "__main__":
    main()

"""Shared fixtures of the training tests: real, judged SynthMath trajectories and a tiny model.

The env gets a one-line system prompt so transcripts stay around 60 tokens and the
tiny model trains in milliseconds per step.
"""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import pytest
import torch

import swirl_envs  # noqa: F401  (registers the env ids)
from swirl_agents.judges import ProgrammaticJudge, judge_trajectories
from swirl_agents.policies.scripted import NoisyOraclePolicy
from swirl_agents.rollout import rollout
from swirl_agents.tiny import build_tiny_model
from swirl_agents.trajectory import Trajectory

ENV_ID = "swirl/SynthMath-v0"
ENV_KWARGS = {
    "num_tasks": 12,
    "min_ops": 2,
    "max_ops": 4,
    "system_prompt": "Compute with <math_exp>, answer with <answer>. {max_steps} steps.",
}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Run the tiny models on one thread: on a busy 2-core machine two threads are far slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def load_model(model_dir: Path):
    """The tiny model (fp32) and its tokenizer, loaded the way a user's model is."""
    import transformers

    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    return model, transformers.AutoTokenizer.from_pretrained(model_dir)


def judged_trajectories(num_tasks: int = 12, seed: int = 0) -> list[Trajectory]:
    """Noisy-oracle episodes of SynthMath with every step judged by the programmatic judge.

    Some steps are wrong (score 0) and the rest right (score 1), so step weights vary.
    """
    env = gym.make(ENV_ID, **ENV_KWARGS)
    episodes = rollout(
        env, NoisyOraclePolicy(0.3), num_tasks=num_tasks, seed=seed, progress=False
    ).trajectories
    judge = ProgrammaticJudge.from_env(env.unwrapped)
    judged = judge_trajectories(episodes, process_judge=judge)
    return sorted((item.to_trajectory() for item in judged), key=lambda t: t.key)


def tiny_model(out_dir: Path, trajectories: list[Trajectory], **kwargs) -> Path:
    """A ~30k-parameter Llama-shaped model with a tokenizer trained on the transcripts."""
    settings = {
        "vocab_size": 600,
        "hidden_size": 32,
        "num_layers": 2,
        "num_heads": 2,
        "intermediate_size": 64,
    }
    settings.update(kwargs)
    texts = [t.transcript for t in trajectories] * 4
    return build_tiny_model(out_dir, texts, **settings)


def write_store(path: Path, trajectories: list[Trajectory]) -> Path:
    """Write trajectories as a JSONL store (the format ``swirl train --data`` reads)."""
    with open(path, "w", encoding="utf-8") as handle:
        for trajectory in trajectories:
            handle.write(json.dumps(trajectory.to_dict()) + "\n")
    return path

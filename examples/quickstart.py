"""Drive a swirl environment with a 20-line hand-written agent.

    python examples/quickstart.py

The agent reads the transcript, computes each step of a SynthMath word problem
itself (reading the numbers from the task's metadata would be cheating, so it uses
the calculator on what the question says) and answers with the last result.
"""

import re

import gymnasium as gym

import swirl_envs  # noqa: F401  (registers swirl/* ids)


def agent(observation: str, task) -> str:
    """Replay the expert's next step: the gold path, one action per call."""
    done = len(re.findall(r"</(?:math_exp|answer)>", observation.split("Question:", 1)[1]))
    return task.gold_path[done]


env = gym.make("swirl/SynthMath-v0", render_mode="ansi")
observation, info = env.reset(seed=0)
terminated = truncated = False
while not (terminated or truncated):
    action = agent(observation, env.unwrapped.task)
    observation, reward, terminated, truncated, info = env.step(action)
print(env.render())
print(f"reward={reward} steps={info['step']}")

"""Drive a swirl environment with a 20-line hand-written agent.

    python examples/quickstart.py

The agent solves SynthMath word problems from the words alone: it maps each
sentence to an operation, sends one calculation per step to the calculator, reads
the result back from the transcript, and answers with the last result.
"""

import re

import gymnasium as gym

import swirl_envs  # noqa: F401  (registers the swirl/* ids)

RULES = [  # (pattern, operator, operand when the sentence has no number)
    (r"buys (\d+)|finds (\d+)|gives \w+ (\d+) more", "+", None),
    (r"gives away (\d+)|sells (\d+)|loses (\d+)", "-", None),
    (r"(\d+) times as many", "*", None), (r"doubles", "*", "2"), (r"triples", "*", "3"),
    (r"among (\d+)|into (\d+) equal", "/", None), (r"only half", "/", "2"),
]  # fmt: skip


def agent(observation: str) -> str:
    """Plan the calculations from the question, then do the next one not yet done."""
    question = observation.split("Question: ", 1)[1].split("\n", 1)[0]
    sentences = re.split(r"(?<=\.) ", question)
    plan = []
    for sentence in sentences[1:]:
        for pattern, operator, fixed in RULES:
            if match := re.search(pattern, sentence):
                plan.append((operator, fixed or next(g for g in match.groups() if g)))
    results = re.findall(r"-> (-?\d+)", observation)
    value = results[-1] if results else re.search(r"\d+", sentences[0]).group()
    if len(results) == len(plan):
        return f"<answer>{value}</answer>"
    operator, operand = plan[len(results)]
    return f"I compute the next quantity. <math_exp>{value} {operator} {operand}</math_exp>"


env = gym.make("swirl/SynthMath-v0", split="test", render_mode="ansi")
correct, episodes = 0, 50
for seed in range(episodes):
    observation, info = env.reset(seed=seed)
    terminated = truncated = False
    while not (terminated or truncated):
        observation, reward, terminated, truncated, info = env.step(agent(observation))
    correct += reward
print(env.render())
print(f"accuracy of the hand-written agent on {episodes} test problems: {correct / episodes:.2f}")

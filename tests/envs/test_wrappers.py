"""The Discrete/Box wrappers: candidates, masks, hashed observations, SB3 compatibility."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from sb3_contrib.common.maskable.utils import get_action_masks
from stable_baselines3.common.env_checker import check_env
from stable_baselines3.common.vec_env import DummyVecEnv

import swirl_envs  # noqa: F401  (registers the env ids)
from swirl_envs import Passage, Task
from swirl_envs.env import SwirlEnv
from swirl_envs.tools.base import Tool, ToolResult
from swirl_envs.wrappers import (
    SLOT_FEATURES,
    CandidateActions,
    GoldPathCandidates,
    PolicyCandidates,
    TextHasher,
    VectorObservation,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


class LookupTool(Tool):
    """Returns the passage titled exactly like the argument."""

    name = "lookup"
    tag = "lookup"
    argument = "title"
    description = "Look up a passage by its title."

    def __call__(self, argument: str, task: Task) -> ToolResult:
        for passage in task.passages:
            if passage.title == argument:
                return ToolResult(passage.text)
        return ToolResult("Nothing found.", ok=False)


def two_hop_task(index: int, company: str, founder: str, city: str) -> Task:
    return Task(
        id=f"task-{index}",
        question=f"Where was the founder of {company} born?",
        answers=(city,),
        gold_path=(
            f"<lookup>{company}</lookup>",
            f"<lookup>{founder}</lookup>",
            f"<answer>{city}</answer>",
        ),
        passages=(
            Passage(company, f"{company} was founded by {founder}."),
            Passage(founder, f"{founder} was born in {city}."),
        ),
    )


TASKS = [
    two_hop_task(0, "Dovrin Works", "Mira Tolven", "Qaravel"),
    two_hop_task(1, "Asko Mills", "Tamo Reef", "Ostrava"),
    two_hop_task(2, "Bel Trading", "Ines Varo", "Lumet"),
    two_hop_task(3, "Corva Labs", "Pell Anders", "Qaravel"),  # same answer as task 0
]
ONE_STEP = [
    Task(id="only", question="Say hi.", answers=("hi",), gold_path=("<answer>hi</answer>",))
]


def make_text_env(tasks=TASKS, max_steps: int = 4, render_mode: str | None = None) -> SwirlEnv:
    return SwirlEnv(
        tasks, [LookupTool()], system_prompt="Answer in {max_steps} steps.",
        max_steps=max_steps, render_mode=render_mode,
    )  # fmt: skip


def make_env(num_candidates: int = 4, **kwargs) -> VectorObservation:
    return VectorObservation(CandidateActions(make_text_env(), num_candidates), dim=32, **kwargs)


def next_gold(env: CandidateActions) -> str:
    taken = env.episode_actions
    return next(action for action in env.unwrapped.task.gold_path if action not in taken)


def test_sb3_check_env_passes_on_wrapped_envs():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(make_env())
        check_env(make_env(embed_candidates=True))
        check_env(make_env(num_candidates=6))


@pytest.mark.parametrize("env_id", ["swirl/SynthMath-v0", "swirl/SynthHop-v0"])
def test_sb3_check_env_passes_on_the_generated_envs(env_id):
    env = gym.make(env_id, num_tasks=50)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(VectorObservation(CandidateActions(env, 4), dim=32))


def test_spaces_are_discrete_and_a_float_box_of_the_documented_size():
    env = make_env(num_candidates=3, embed_candidates=True)
    assert env.action_space == gym.spaces.Discrete(3)
    assert env.observation_space.shape == (32 + 3 * (len(SLOT_FEATURES) + 32),)
    assert env.observation_space.dtype == np.float32
    plain = VectorObservation(make_text_env(), dim=16)
    assert plain.observation_space.shape == (16,)
    assert plain.reset(seed=0)[0].shape == (16,)


def test_candidates_hold_the_next_gold_action_at_every_step_and_following_it_scores_one():
    env = make_env()
    chooser = env.env
    for seed in range(8):
        _, info = env.reset(seed=seed)
        done, reward = False, 0.0
        while not done:
            gold = next_gold(chooser)
            assert gold in info["candidates"]
            _, reward, terminated, truncated, info = env.step(info["candidates"].index(gold))
            done = terminated or truncated
        assert reward == 1.0


def test_candidates_are_reproducible_under_a_seed_and_shuffled_across_seeds():
    first, second = make_env(), make_env()
    slots = set()
    for seed in range(10):
        _, info_a = first.reset(seed=seed)
        _, info_b = second.reset(seed=seed)
        assert info_a["candidates"] == info_b["candidates"]
        slots.add(info_a["candidates"].index(next_gold(first.env)))
    assert len(slots) > 1  # the right answer's slot carries no information


def test_no_distractor_is_a_right_answer():
    env = make_text_env()
    chooser = CandidateActions(env, num_candidates=4, source=GoldPathCandidates(4, 1.0))
    for seed in range(30):
        _, info = chooser.reset(seed=seed, options={"index": 0})
        right = [c for c in info["candidates"] if c.startswith("<answer>") and "Qaravel" in c]
        assert right == []  # neither task 0's own answer too early nor task 3's equal answer


def test_invalid_choices_are_error_observations_that_count_as_steps():
    env = CandidateActions(make_text_env(ONE_STEP, max_steps=4), num_candidates=3)
    _, info = env.reset(seed=0)
    assert info["action_mask"].tolist() == [True, False, False]  # one task, one action
    for step, bad in enumerate([2, 7, "slot", None], start=1):
        observation, reward, terminated, truncated, info = env.step(bad)
        assert info["parse_error"] and info["step"] == step and reward == 0.0
        assert "invalid choice" in info["action"]
        assert observation.endswith(info["feedback"])
    assert truncated and not terminated
    assert not env.action_masks().any()


def test_numpy_actions_are_accepted():
    env = make_env()
    _, info = env.reset(seed=0)
    slot = info["candidates"].index(next_gold(env.env))
    _, _, _, _, info = env.step(np.array(slot))
    assert info["parse_error"] is None and info["tool"] == "lookup"


def test_action_masks_reach_maskable_algorithms_through_a_vec_env():
    vec = DummyVecEnv(
        [lambda: VectorObservation(CandidateActions(make_text_env(ONE_STEP), num_candidates=2))] * 2
    )
    vec.reset()
    assert get_action_masks(vec).tolist() == [[True, False], [True, False]]


def test_policy_candidates_ask_the_policy_and_drop_duplicates():
    calls = []

    def policy(observations: list[str]) -> list[str]:
        calls.append(observations)
        return ["<answer>x</answer>", "<lookup>Asko Mills</lookup>", "<answer>x</answer>", 3]

    env = CandidateActions(make_text_env(), num_candidates=4, source=PolicyCandidates(policy, 4))
    observation, info = env.reset(seed=0)
    assert calls == [[observation] * 4]
    assert info["candidates"] == ["<answer>x</answer>", "<lookup>Asko Mills</lookup>", "", ""]
    assert info["action_mask"].tolist() == [True, True, False, False]


def test_slot_features_describe_each_candidate():
    text_env = make_text_env(render_mode="ansi")
    chooser = CandidateActions(text_env, 4)
    env = VectorObservation(chooser, dim=32)
    env.reset(seed=0, options={"index": 0})
    chooser.candidates = ["<lookup>Dovrin Works</lookup>", "<answer>Qaravel</answer>", "no tag", ""]
    features = env.observation(text_env.render())
    table = features[32:].reshape(4, len(SLOT_FEATURES))
    column = dict(zip(SLOT_FEATURES, table.T, strict=True))
    assert column["valid"].tolist() == [1, 1, 1, 0]
    assert column["is_tool_call"].tolist() == [1, 0, 0, 0]
    assert column["is_answer"].tolist() == [0, 1, 0, 0]
    assert column["recall_in_episode"][0] == 1.0  # "Dovrin Works" is in the question
    assert column["recall_in_episode"][1] == 0.0  # the answer is not known yet


def test_repeated_and_latest_result_features_follow_the_episode():
    env = make_env()
    chooser = env.env
    _, info = env.reset(seed=0, options={"index": 0})
    first = next_gold(chooser)
    features, *_ = env.step(info["candidates"].index(first))
    table = features[32:].reshape(4, len(SLOT_FEATURES))
    column = dict(zip(SLOT_FEATURES, table.T, strict=True))
    candidates = chooser.candidates
    second = candidates.index("<lookup>Mira Tolven</lookup>")
    assert column["recall_in_latest"][second] == 1.0  # the result named the founder
    for slot, candidate in enumerate(candidates):
        assert column["repeated"][slot] == float(candidate == first)


def test_text_hasher_gives_unit_vectors_and_zero_for_empty_text():
    hasher = TextHasher(64)
    vector = hasher("The founder of Dovrin Works was born in Qaravel.")
    assert vector.dtype == np.float32 and vector.shape == (64,)
    assert np.linalg.norm(vector) == pytest.approx(1.0)
    assert not hasher("").any() and not hasher("the of a").any()  # stopwords only
    assert not np.allclose(vector, hasher("Something else entirely."))


def test_text_hasher_is_the_same_in_processes_with_different_hash_seeds():
    code = (
        "from swirl_envs.wrappers import TextHasher;"
        "print(TextHasher(16)('Mira Tolven was born in Qaravel').round(6).tolist())"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True,
            env={"PYTHONHASHSEED": seed, "PATH": ""}, cwd=EXAMPLES.parent,
        ).stdout
        for seed in ("1", "2")
    }  # fmt: skip
    assert len(outputs) == 1


def test_user_embedding_replaces_the_hasher():
    def embed(text: str) -> np.ndarray:
        return np.array([len(text), text.count("o"), 1.0])

    text_env = make_text_env(render_mode="ansi")
    env = VectorObservation(CandidateActions(text_env, 2), embed=embed)
    assert env.observation_space.shape == (3 + 2 * len(SLOT_FEATURES),)
    observation, _ = env.reset(seed=0)
    # The transcript is embedded without the system prompt.
    assert observation[0] == len(text_env.render()) - len(text_env.system_prompt)
    assert observation[2] == 1.0
    with pytest.raises(ValueError, match="1-D"):
        VectorObservation(make_text_env(), embed=lambda text: np.zeros((2, 2)))


def test_make_vec_of_wrapped_envs_steps_in_lockstep():
    envs = gym.vector.SyncVectorEnv([lambda: make_env()] * 3)
    observations, infos = envs.reset(seed=0)
    assert observations.shape == (3, envs.single_observation_space.shape[0])
    observations, rewards, *_ = envs.step(np.zeros(3, dtype=np.int64))
    assert observations.dtype == np.float32 and rewards.shape == (3,)


def load_example(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_maskable_ppo_example_learns_above_random_on_synthhop(tmp_path):
    example = load_example("sb3_ppo")
    threads = torch.get_num_threads()  # the example pins torch to one thread
    try:
        results = example.main(
            [
                "--env-id", "swirl/SynthHop-v0", "--env-kwargs", '{"max_hops": 2}',
                "--total-timesteps", "4096", "--train-tasks", "300", "--test-tasks", "100",
                "--eval-episodes", "100", "--out", str(tmp_path / "ppo.json"),
            ]
        )  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    assert results["trained"]["success"] >= results["random"]["success"] + 0.2
    assert (tmp_path / "ppo.json").exists()

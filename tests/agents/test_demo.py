"""The demo's parts: the misconception experts, accuracy by group, the report table."""

from __future__ import annotations

import gymnasium as gym
import pytest

import swirl_envs  # noqa: F401  (registers the env ids)
from swirl_agents.demo.misconceptions import HopMisconceptionPolicy, MathMisconceptionPolicy
from swirl_agents.judges import ProgrammaticJudge, judge_trajectories
from swirl_agents.report import format_table, gains
from swirl_agents.rollout import rollout
from swirl_agents.stages import score_episodes
from swirl_agents.stages.recipe import uses_confusion

MATH = {"give_away": "+", "share_equally": "*"}
HOP = {"born_in": "lives_in", "founded_by": "ceo"}


def math_env(n=60):
    return gym.make("swirl/SynthMath-v0", num_tasks=n, min_ops=2, max_ops=4, max_steps=6)


def hop_env(n=60):
    return gym.make("swirl/SynthHop-v0", num_tasks=n, min_hops=2, max_hops=2, max_steps=4)


def run(env, policy):
    return rollout(env, policy, progress=False).trajectories


def test_math_expert_without_errors_is_the_oracle():
    episodes = run(math_env(), MathMisconceptionPolicy(MATH, q=0.0, p=0.0))
    assert all(t.score == 1.0 for t in episodes)


def test_math_misconception_always_uses_the_wrong_operator_and_carries_the_value():
    env = math_env()
    episodes = run(env, MathMisconceptionPolicy(MATH, q=1.0, p=0.0))
    confused = [t for t in episodes if uses_confusion(t.meta["task"], MATH)]
    clean = [t for t in episodes if not uses_confusion(t.meta["task"], MATH)]
    assert confused and clean
    assert all(t.score == 1.0 for t in clean)
    # The generator keeps a single wrong operator valid, so every confused step is wrong.
    assert sum(t.score for t in confused) / len(confused) < 0.1
    for trajectory in confused:
        meta = trajectory.meta["task"]
        for step, key in zip(trajectory.steps, meta["phrasings"], strict=False):
            if key == "give_away":
                assert " + " in step.action
        # Later steps compute on what the calculator returned, not on the gold value.
        for previous, step in zip(trajectory.steps, trajectory.steps[1:], strict=False):
            result = previous.feedback.rsplit(" -> ", 1)[-1].strip()
            assert result in step.action


def test_hop_misconception_follows_the_confused_relation():
    env = hop_env()
    world = env.unwrapped.world
    episodes = run(env, HopMisconceptionPolicy(world, HOP, q=1.0, p=0.0))
    for trajectory in episodes:
        meta = trajectory.meta["task"]
        start, relations = meta["entities"][0], meta["relations"]
        wrong = [HOP.get(relation, relation) for relation in relations]
        expected = world.follow(start, wrong)[-1]
        assert trajectory.steps[-1].answer.strip() == expected
        assert (trajectory.score == 1.0) == (not uses_confusion(meta, HOP))


def test_noise_lowers_accuracy_on_other_problems_and_the_judge_sees_it():
    env = hop_env(100)
    episodes = run(env, HopMisconceptionPolicy(env.unwrapped.world, HOP, q=0.0, p=0.5))
    assert 0 < sum(t.score for t in episodes) < len(episodes)
    judged = judge_trajectories(episodes, ProgrammaticJudge.from_env(env.unwrapped))
    assert any(not all(j.good for j in item.process) for item in judged)


def test_policies_reject_bad_settings():
    with pytest.raises(ValueError, match="phrasings"):
        MathMisconceptionPolicy({"eat": "+"})
    with pytest.raises(ValueError, match="different entity types"):
        HopMisconceptionPolicy(hop_env(2).unwrapped.world, {"born_in": "works_for"})
    with pytest.raises(ValueError, match="q must be"):
        MathMisconceptionPolicy(MATH, q=1.5)


def test_scores_split_by_group():
    episodes = run(math_env(), MathMisconceptionPolicy(MATH, q=1.0, p=0.0))
    report = score_episodes(episodes, group=lambda meta: uses_confusion(meta, MATH))
    assert report["out_group"] == 1.0 and report["in_group"] < 0.1
    assert report["in_group_episodes"] + report["out_group_episodes"] == len(episodes)


def fake_results():
    def cell(accuracy, in_group):
        return {"accuracy": accuracy, "in_group": in_group}

    seed = lambda a, b: {  # noqa: E731
        "math": {
            "eval": {
                "base": {"0": cell(a, 0.0), "1": cell(0.4, 0.1)},
                "swirl": {"0": cell(b, 0.9), "1": cell(0.8, 0.7)},
            },
            "stages": {},
        }
    }
    return {"seeds": {"0": seed(0.5, 0.9), "1": seed(0.6, 1.0)}}


def test_table_shows_mean_and_spread_over_seeds():
    table = format_table(fake_results())
    lines = table.splitlines()
    assert "math greedy" in lines[0] and "math T=1" in lines[0]
    assert lines[2].startswith("| base | 55.0 [50-60] / 0.0 [0-0]")
    assert lines[3].startswith("| SWiRL | 95.0 [90-100]")


def test_gains_are_per_seed_points():
    lines = gains(fake_results())
    assert "seed 0, math greedy SWiRL - base: +40.0" in lines
    assert "seed 1, math greedy SWiRL - base: +40.0" in lines


def test_seeds_flag_counts_seeds_and_seed_lists_them():
    import argparse

    from swirl_agents.config import add_run_config_flags
    from swirl_agents.config import run_config_overrides as config_overrides

    parser = argparse.ArgumentParser()
    add_run_config_flags(parser)
    assert "seeds=[0, 1, 2]" in config_overrides(parser.parse_args(["--seeds", "3"]))
    assert "seeds=[4, 7]" in config_overrides(parser.parse_args(["--seed", "4", "7"]))
    with pytest.raises(ValueError, match="number of seeds"):
        config_overrides(parser.parse_args(["--seeds", "0"]))
    with pytest.raises(SystemExit):  # one or the other
        parser.parse_args(["--seeds", "2", "--seed", "1"])

"""The filters (none, process, outcome, process+outcome) and the judge and filter commands."""

from __future__ import annotations

import json
import re

import gymnasium as gym
import pytest

import swirl_envs  # noqa: F401  (registers the env ids)
from swirl_agents.filters import FILTER_MODES, filter_trajectories
from swirl_agents.judges import JudgedTrajectory, Judgement
from swirl_agents.policies.scripted import NoisyOraclePolicy
from swirl_agents.rollout import rollout
from swirl_agents.store import TrajectoryStore, load_trajectories
from swirl_agents.trajectory import Step, Trajectory


def judged(name: str, process: list[bool | None], outcome: bool | None) -> JudgedTrajectory:
    trajectory = Trajectory(
        name, 0, "env", "q", ["a"], "prompt", steps=[Step(f"a{k}") for k in range(len(process))]
    )
    verdict = lambda good: Judgement(good, None if good is None else float(good), "", "test")  # noqa: E731
    return JudgedTrajectory(trajectory, [verdict(g) for g in process], verdict(outcome))


DATA = [
    judged("all-good-right", [True, True, True], True),
    judged("all-good-wrong", [True, True], False),
    judged("one-bad-right", [True, False, True, True], True),
    judged("bad-wrong", [False], False),
    judged("unparseable-step", [True, None], True),
    judged("unparseable-outcome", [True, True, True, True, True], None),
]


@pytest.mark.parametrize(
    "mode, kept, steps, unparseable",
    [
        ("none", [item.trajectory.task_id for item in DATA], 17, 0),
        ("process", ["all-good-right", "all-good-wrong", "unparseable-outcome"], 10, 1),
        ("outcome", ["all-good-right", "one-bad-right", "unparseable-step"], 9, 1),
        ("process+outcome", ["all-good-right"], 3, 2),
    ],
)  # fmt: skip
def test_each_filter_keeps_whole_trajectories_and_counts_them(mode, kept, steps, unparseable):
    result = filter_trajectories(DATA, mode)
    assert [item.trajectory.task_id for item in result.kept] == kept
    assert (result.trajectories_kept, result.trajectories_total) == (len(kept), 6)
    assert (result.steps_kept, result.steps_total) == (steps, 17)
    assert result.unparseable == unparseable
    assert result.summary() == (
        f"filter {mode}: kept {len(kept)}/6 trajectories, {steps}/17 steps "
        f"({unparseable} dropped for unparseable judgements)"
    )


def test_filters_need_the_judgements_they_read():
    unjudged = JudgedTrajectory(DATA[0].trajectory)
    assert filter_trajectories([unjudged], "none").trajectories_kept == 1
    with pytest.raises(ValueError, match="no process judgements"):
        filter_trajectories([unjudged], "process")
    with pytest.raises(ValueError, match="no outcome judgement"):
        filter_trajectories([unjudged], "outcome")
    with pytest.raises(ValueError, match="filter mode must be one of"):
        filter_trajectories(DATA, "steps")
    assert FILTER_MODES == ("none", "process", "outcome", "process+outcome")


# ---- the commands ----------------------------------------------------------------------


@pytest.fixture
def noisy_trajectories(tmp_path):
    env = gym.make("swirl/SynthMath-v0", num_tasks=6, min_ops=2, max_ops=3, max_steps=5)
    path = tmp_path / "trajectories.jsonl"
    with TrajectoryStore(path) as store:
        rollout(env, NoisyOraclePolicy(0.25), samples=2, seed=3, store=store, progress=False)
    return path


def test_judge_then_filter_from_the_command_line(tmp_path, noisy_trajectories, swirl):
    out, kept = tmp_path / "judged.jsonl", tmp_path / "kept.jsonl"
    argv = ["judge", "--in", str(noisy_trajectories), "--out", str(out),
            "--process", "programmatic", "--outcome", "programmatic", "--chunk", "5"]  # fmt: skip
    code, printed, _ = swirl(*argv)
    assert code == 0
    assert "judged 12 trajectories (0 already in the output)" in printed
    judged = [JudgedTrajectory.from_trajectory(t) for t in load_trajectories(out)]
    assert len(judged) == 12
    # Every query is a hit or a miss; episodes that took the same steps share verdicts.
    hits, misses = (int(n) for n in re.search(r"(\d+) hits, (\d+) misses", printed).groups())
    assert hits + misses == sum(len(item.trajectory.steps) for item in judged) + 12
    good_steps = sum(j.good is True for item in judged for j in item.process)
    assert f"process: {good_steps} good" in printed
    # Outcome verdicts agree with the env's own reward on these tasks.
    assert all(item.outcome.good == (item.trajectory.score == 1.0) for item in judged)

    filtered = swirl("filter", "--in", out, "--out", kept, "--mode", "process")
    expected = filter_trajectories(judged, "process")
    assert filtered.code == 0 and filtered.out.strip() == expected.summary()
    assert [t.key for t in load_trajectories(kept)] == [
        item.trajectory.key for item in expected.kept
    ]
    assert 0 < expected.trajectories_kept < 12


def test_judge_command_resumes_without_judging_twice(tmp_path, noisy_trajectories, swirl):
    out = tmp_path / "judged.jsonl"
    every = list(load_trajectories(noisy_trajectories))
    partial = tmp_path / "first-half.jsonl"
    with TrajectoryStore(partial) as store:
        store.append(every[:5])
    base = [
        "judge",
        "--out",
        str(out),
        "--process",
        "programmatic",
        "--cache",
        str(tmp_path / "c.sqlite"),
    ]
    assert swirl(*base, "--in", partial).code == 0
    printed = swirl(*base, "--in", noisy_trajectories).out
    assert "judged 7 trajectories (5 already in the output)" in printed
    keys = [t.key for t in load_trajectories(out)]
    assert sorted(keys) == sorted(t.key for t in every) and len(set(keys)) == 12
    # A full rerun over a fresh output is answered by the cache alone.
    again = swirl(*base, "--in", noisy_trajectories, "--out", tmp_path / "again.jsonl")
    assert " 0 misses" in again.out


def refused(run, message: str) -> None:
    """A user error: exit status 2, one line on stderr naming the command and ``message``."""
    assert run.code == 2 and run.out == "", run
    assert run.err.count("\n") == 1 and run.err.startswith("swirl ")
    assert re.search(message, run.err), run.err


def test_judge_command_reports_bad_specs_and_missing_judges(tmp_path, noisy_trajectories, swirl):
    argv = ["judge", "--in", str(noisy_trajectories), "--out", str(tmp_path / "o.jsonl")]
    refused(swirl(*argv), "give --process, --outcome or both")
    refused(
        swirl(*argv, "--process", "gpt4"), "unknown judge 'gpt4'; expected one of: programmatic"
    )
    refused(swirl(*argv, "--outcome", "openai:http://127.0.0.1:9/v1"), "needs --judge-model")
    assert not (tmp_path / "o.jsonl").exists()


def test_filter_command_names_the_file_of_an_unjudged_trajectory(
    tmp_path, noisy_trajectories, swirl
):
    run = swirl("filter", "--in", noisy_trajectories, "--out", tmp_path / "k.jsonl")
    refused(run, "swirl filter: .*trajectories.jsonl.*has not been judged")


def test_judge_command_uses_a_model_judge_with_the_math_prompts(
    tmp_path, noisy_trajectories, swirl
):
    from tests.agents.fault_server import FaultServer

    def reply(body):
        return "YES" if "are all equivalent" in body["messages"][0]["content"] else "GOOD"

    out = tmp_path / "judged.jsonl"
    with FaultServer(reply) as server:
        argv = ["judge", "--in", str(noisy_trajectories), "--out", str(out), "--no-cache",
                "--process", f"openai:{server.base_url}", "--outcome", f"openai:{server.base_url}",
                "--judge-model", "m"]  # fmt: skip
        assert swirl(*argv).code == 0
    prompts = [r["messages"][0]["content"] for r in server.requests]
    assert any("with the help of a calculator" in p for p in prompts)
    judged = [JudgedTrajectory.from_trajectory(t) for t in load_trajectories(out)]
    assert all(item.outcome.good for item in judged if item.outcome.raw == "YES")
    assert sum(1 for item in judged if item.outcome.raw == "YES") == sum(
        1 for item in judged if any(s.answer is not None for s in item.trajectory.steps)
    )
    assert json.loads(out.read_text().splitlines()[0])["meta"]["judgements"]["process"][0][
        "judge"
    ].startswith("openai:")


def test_judge_command_runs_a_local_model_judge_loaded_once(
    tmp_path, noisy_trajectories, swirl, monkeypatch
):
    pytest.importorskip("torch")
    from transformers import AutoModelForCausalLM

    from swirl_agents.judges.prompts import MATH_OUTCOME_PROMPT, MATH_PROCESS_PROMPT
    from swirl_agents.tiny import build_tiny_model

    loads = []
    load = AutoModelForCausalLM.from_pretrained
    monkeypatch.setattr(
        AutoModelForCausalLM, "from_pretrained", lambda *a, **k: loads.append(a) or load(*a, **k)
    )

    texts = [MATH_PROCESS_PROMPT.direct_template, MATH_OUTCOME_PROMPT.direct_template] * 4
    model = build_tiny_model(tmp_path / "judge", texts, vocab_size=300, max_positions=1024)
    out = tmp_path / "judged.jsonl"
    spec = f"hf:{model}"
    argv = ["judge", "--in", str(noisy_trajectories), "--out", str(out), "--process", spec,
            "--outcome", spec, "--hf-mode", "logits", "--batch-size", "16"]  # fmt: skip
    run = swirl(*argv)
    assert run.code == 0
    judged = [JudgedTrajectory.from_trajectory(t) for t in load_trajectories(out)]
    assert all(j.raw.startswith("P(GOOD)=") and j.judge == spec for i in judged for j in i.process)
    assert all(i.outcome.raw.startswith("P(YES)=") for i in judged if i.trajectory.terminated)
    assert "0 unparseable steps" in run.out
    assert len(loads) == 1  # one model serves the process and the outcome judge


def test_judge_command_names_tasks_from_another_env(tmp_path, noisy_trajectories, swirl):
    out = str(tmp_path / "o.jsonl")
    hop = ["--env", "swirl/SynthHop-v0", "--env-kwargs", '{"num_tasks": 3}']
    argv = ["judge", "--in", str(noisy_trajectories), "--out", out, "--process", "programmatic"]
    refused(swirl(*argv, *hop), "not among the programmatic judge's 3 tasks")
    refused(swirl(*argv, "--env-kwargs", "{}"), "--env-kwargs goes with --env")

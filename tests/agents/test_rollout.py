"""The rollout engine: batching, determinism, stored trajectories, kill-and-resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import gymnasium as gym
import pytest

import swirl_envs  # noqa: F401 - registers the env ids
from swirl_agents.policies import NoisyOraclePolicy, OraclePolicy, RandomPolicy, episode_seed
from swirl_agents.rollout import rollout
from swirl_agents.store import TornLineWarning, TrajectoryStore, load_trajectories
from swirl_envs import Passage, Task
from swirl_envs.env import SwirlEnv
from swirl_envs.tools.base import Tool, ToolResult

REPO = Path(__file__).resolve().parents[2]


def comparable(trajectories):
    """Trajectories keyed by episode, without wall-clock timing (the only field that may differ)."""
    records = {}
    for trajectory in trajectories:
        record = trajectory.to_dict()
        record.pop("timing")
        records[trajectory.key] = record
    return records


def replay(env: gym.Env, trajectory) -> tuple[str, float]:
    """Step a fresh env through a stored trajectory's actions; return the transcript and score."""
    base = env.unwrapped
    text, _ = base.reset(seed=trajectory.seed, options={"index": trajectory.meta["index"]})
    reward = 0.0
    for step in trajectory.steps:
        text, reward, _, _, _ = base.step(step.action)
    return text, reward


@pytest.mark.parametrize("env_id", ["swirl/SynthMath-v0", "swirl/SynthHop-v0"])
def test_oracle_is_always_right_and_stored_trajectories_replay_exactly(tmp_path, env_id):
    env = gym.make(env_id, num_tasks=25)
    path = tmp_path / "trajectories.jsonl"
    with TrajectoryStore(path) as store:
        result = rollout(env, OraclePolicy(), samples=2, batch_size=8, store=store, progress=False)
    assert result.summary.episodes == 50 and result.summary.accuracy == 1.0
    stored = list(load_trajectories(path))
    assert comparable(stored) == comparable(result.trajectories)
    fresh = gym.make(env_id, num_tasks=25)
    for trajectory in stored:
        assert trajectory.terminated and trajectory.score == 1.0
        gold = trajectory.answers
        assert trajectory.metrics == fresh.unwrapped.scorer(gold[0], gold)  # info["metrics"]
        assert trajectory.env_id == env_id and trajectory.env_kwargs["num_tasks"] == 25
        assert trajectory.policy == {"name": "oracle"}
        assert trajectory.seed == episode_seed(0, trajectory.task_id, trajectory.sample)
        assert set(trajectory.timing) == {"policy_seconds", "env_seconds", "wall_seconds"}
        assert replay(fresh, trajectory) == (trajectory.transcript, trajectory.score)


def test_trajectories_do_not_depend_on_batch_size():
    env = gym.make("swirl/SynthMath-v0", num_tasks=15)
    runs = [
        rollout(env, NoisyOraclePolicy(0.4), samples=3, batch_size=size, seed=5, progress=False)
        for size in (1, 4, 64)
    ]
    assert comparable(runs[0].trajectories) == comparable(runs[1].trajectories)
    assert comparable(runs[0].trajectories) == comparable(runs[2].trajectories)
    other_seed = rollout(env, NoisyOraclePolicy(0.4), samples=3, seed=6, progress=False)
    assert comparable(other_seed.trajectories) != comparable(runs[0].trajectories)
    assert 0 < runs[0].summary.accuracy < 1


def test_several_envs_run_in_one_rollout():
    envs = [gym.make("swirl/SynthMath-v0", num_tasks=4), gym.make("swirl/SynthHop-v0", num_tasks=4)]
    result = rollout(envs, OraclePolicy(), samples=1, batch_size=3, progress=False)
    assert {t.env_id for t in result.trajectories} == {"swirl/SynthMath-v0", "swirl/SynthHop-v0"}
    assert result.summary.episodes == 8 and result.summary.accuracy == 1.0


def test_random_policy_episodes_end_truncated_or_answered_without_errors():
    env = gym.make("swirl/SynthHop-v0", num_tasks=10)
    result = rollout(env, RandomPolicy(), samples=3, batch_size=7, num_tasks=6, progress=False)
    assert result.summary.episodes == 18
    for trajectory in result.trajectories:
        assert trajectory.terminated != trajectory.truncated
        if trajectory.truncated:
            assert trajectory.score == 0.0 and len(trajectory.steps) == env.unwrapped.max_steps
        assert trajectory.transcript.startswith(trajectory.prompt)
    assert any(step.parse_error for t in result.trajectories for step in t.steps)


class RecordingSearch(Tool):
    """A lookup tool that records whether it was called one by one or in batches."""

    name, tag, argument, description = "search", "search_query", "query", "Look up a title."

    def __init__(self):
        self.single_calls = 0
        self.batches: list[int] = []

    def lookup(self, query: str, task: Task) -> ToolResult:
        for passage in task.passages:
            if passage.title == query:
                return ToolResult(passage.text)
        return ToolResult("No results.")

    def __call__(self, query: str, task: Task) -> ToolResult:
        self.single_calls += 1
        return self.lookup(query, task)

    def call_many(self, calls):
        self.batches.append(len(calls))
        return [self.lookup(query, task) for query, task in calls]


def hop_tasks(count: int) -> list[Task]:
    return [
        Task(
            id=f"hop{i}",
            question=f"Where does the friend of P{i} live?",
            answers=(f"C{i}",),
            gold_path=(
                f"<search_query>P{i}</search_query>",
                f"<search_query>F{i}</search_query>",
                f"<answer>C{i}</answer>",
            ),
            passages=(
                Passage(f"P{i}", f"P{i} is a friend of F{i}."),
                Passage(f"F{i}", f"F{i} lives in C{i}."),
            ),
        )
        for i in range(count)
    ]


def test_search_calls_of_a_round_are_served_in_one_batch():
    tool = RecordingSearch()
    env = SwirlEnv(hop_tasks(6), [tool], system_prompt="Answer in {max_steps} steps.", max_steps=4)
    result = rollout(env, NoisyOraclePolicy(0.3), samples=2, batch_size=12, progress=False)
    assert tool.single_calls == 0
    assert tool.batches[0] == 12  # every live episode searches in the first round
    searches = sum(step.tool == "search" for t in result.trajectories for step in t.steps)
    assert sum(tool.batches) == searches
    # The same run with the tool served one call at a time gives the same trajectories.
    plain = SwirlEnv(
        hop_tasks(6), [_Unbatched()], system_prompt="Answer in {max_steps} steps.", max_steps=4
    )
    one_by_one = rollout(plain, NoisyOraclePolicy(0.3), samples=2, batch_size=12, progress=False)
    assert comparable(one_by_one.trajectories) == comparable(result.trajectories)
    assert env.tools == [tool]  # the env's own tool list is left as it was


class _Unbatched(RecordingSearch):
    """Serves a round's calls one by one: ``Tool.call_many``'s default."""

    call_many = Tool.call_many


class _FailingBatch(RecordingSearch):
    """A batched entry point that fails: each env then runs its call itself."""

    def call_many(self, calls):
        raise RuntimeError("the batch failed")


class WatchedEnv(SwirlEnv):
    """Records each ``parse_action`` (copies share the record); reassigning ``tools`` fails."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.parsed: list[str] = []

    def __setattr__(self, name, value):
        if name == "tools" and "tools" in vars(self):
            raise AssertionError("env.tools was reassigned")
        super().__setattr__(name, value)

    def parse_action(self, action):
        self.parsed.append(action)
        return super().parse_action(action)


def test_each_action_is_parsed_once_and_batched_results_are_applied_without_touching_tools():
    tool = RecordingSearch()
    env = WatchedEnv(
        hop_tasks(6), [tool], system_prompt="Answer in {max_steps} steps.", max_steps=4
    )
    tools = env.tools
    result = rollout(env, NoisyOraclePolicy(0.3), samples=2, batch_size=5, progress=False)
    assert len(env.parsed) == result.summary.actions  # once per action, by the engine
    assert env.tools is tools and tools == [tool]
    searches = [(t, s) for t in result.trajectories for s in t.steps if s.tool == "search"]
    assert tool.single_calls == 0 and sum(tool.batches) == len(searches)
    tasks = {task.id: task for task in env.tasks}
    for trajectory, step in searches:  # each env got its own episode's result from the batch
        found = tool.lookup(step.tool_input, tasks[trajectory.task_id]).text
        assert step.feedback == f"\n{step.tool_input} -> {found}\n"
    failing = _FailingBatch()
    fallback = WatchedEnv(
        hop_tasks(6), [failing], system_prompt="Answer in {max_steps} steps.", max_steps=4
    )
    again = rollout(fallback, NoisyOraclePolicy(0.3), samples=2, batch_size=5, progress=False)
    assert comparable(again.trajectories) == comparable(result.trajectories)
    assert failing.single_calls == len(searches)


def test_a_store_makes_a_second_run_skip_finished_episodes(tmp_path):
    env = gym.make("swirl/SynthMath-v0", num_tasks=6)
    path = tmp_path / "t.jsonl"
    with TrajectoryStore(path) as store:
        first = rollout(env, OraclePolicy(), samples=2, num_tasks=3, store=store, progress=False)
    with TrajectoryStore(path) as store:
        second = rollout(env, OraclePolicy(), samples=2, store=store, progress=False)
    assert (first.summary.episodes, second.summary.skipped, second.summary.episodes) == (6, 6, 6)
    assert len({t.key for t in load_trajectories(path)}) == 12


def test_progress_bar_reports_accuracy_and_throughput(capsys):
    env = gym.make("swirl/SynthMath-v0", num_tasks=4)
    result = rollout(env, OraclePolicy(), progress=True)
    err = capsys.readouterr().err
    assert "acc=1.000" in err and "ep/s" in err
    assert "episodes" in result.summary.format() and result.summary.actions_per_second > 0


def test_bad_inputs_raise_clear_errors():
    env = gym.make("swirl/SynthMath-v0", num_tasks=3)

    class Short:
        def act(self, observations):
            return ["<answer>1</answer>"]

    with pytest.raises(ValueError, match="returned 1 actions for 9 observations"):
        rollout(env, Short(), samples=3, progress=False)
    with pytest.raises(ValueError, match="occurs twice"):
        rollout([env, gym.make("swirl/SynthMath-v0", num_tasks=3)], OraclePolicy(), progress=False)
    with pytest.raises(TypeError, match="not a SwirlEnv"):
        rollout(gym.make("CartPole-v1"), OraclePolicy(), progress=False)
    with pytest.raises(TypeError, match="no act"):
        rollout(env, object(), progress=False)  # type: ignore[arg-type]


CHILD = """
import sys, time
import gymnasium as gym
import swirl_envs
from swirl_agents.policies import NoisyOraclePolicy
from swirl_agents.rollout import rollout
from swirl_agents.store import TrajectoryStore

class SlowNoisyOracle(NoisyOraclePolicy):
    def act(self, observations):
        time.sleep(0.03)
        return super().act(observations)

env = gym.make("swirl/SynthMath-v0", num_tasks=30)
with TrajectoryStore(sys.argv[1]) as store:
    rollout(env, SlowNoisyOracle(0.3), samples=2, batch_size=4, seed=3, store=store, progress=False)
"""


def test_run_killed_with_sigkill_resumes_to_exactly_the_uninterrupted_episodes(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(CHILD))
    path = tmp_path / "trajectories.jsonl"
    child = subprocess.Popen([sys.executable, str(script), str(path)], cwd=REPO)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and child.poll() is None:
        if path.exists() and path.read_bytes().count(b"\n") >= 12:
            break
        time.sleep(0.02)
    os.kill(child.pid, signal.SIGKILL)
    assert child.wait() == -signal.SIGKILL
    lines_at_kill = path.read_bytes().count(b"\n")
    assert 12 <= lines_at_kill < 60, "the child must be killed mid-run"
    # An older crash may also have left half a line behind.
    with path.open("ab") as handle:
        handle.write(b'{"task_id": "synth_math/train/0/29", "sample": 1, "st')

    env = gym.make("swirl/SynthMath-v0", num_tasks=30)
    with pytest.warns(TornLineWarning):
        store = TrajectoryStore(path)
    with store:
        resumed = rollout(
            env,
            NoisyOraclePolicy(0.3),
            samples=2,
            batch_size=4,
            seed=3,
            store=store,
            progress=False,
        )
    assert resumed.summary.skipped == lines_at_kill
    assert resumed.summary.episodes == 60 - lines_at_kill

    uninterrupted = rollout(
        env, NoisyOraclePolicy(0.3), samples=2, batch_size=4, seed=3, progress=False
    )
    stored = list(load_trajectories(path))
    assert len(stored) == 60 == len({t.key for t in stored})
    assert path.read_bytes().endswith(b"\n")
    assert comparable(stored) == comparable(uninterrupted.trajectories)


class SegmentChecking(NoisyOraclePolicy):
    """A noisy oracle that checks each observation's segments against its text."""

    def act(self, observations):
        for observation in observations:
            assert "".join(observation.segments) == observation.text
            assert len(observation.segments) == 1 + 2 * observation.step
        return super().act(observations)


def test_observations_carry_the_transcript_as_prompt_actions_and_feedback():
    policy = SegmentChecking(0.3)
    result = rollout(
        "swirl/SynthHop-v0", policy, samples=2, batch_size=4, num_tasks=6, progress=False
    )
    assert result.summary.actions > len(result.trajectories)


def test_hf_policy_rollout_does_not_depend_on_batch_size(tmp_path):
    torch = pytest.importorskip("torch")
    from swirl_agents.policies import SamplingSettings
    from swirl_agents.policies.hf import HFPolicy
    from swirl_agents.tiny import build_tiny_model, tiny_corpus

    env = gym.make("swirl/SynthMath-v0", num_tasks=3, max_ops=2, min_ops=2, max_steps=3)
    path = build_tiny_model(tmp_path, tiny_corpus([env]), vocab_size=400, hidden_size=64)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        policy = HFPolicy.from_pretrained(
            str(path),
            sampling=SamplingSettings(temperature=1.0, max_new_tokens=8),
            prompt_format="text",
        )
        runs = [rollout(env, policy, samples=2, batch_size=size, progress=False) for size in (1, 6)]
    finally:
        torch.set_num_threads(threads)
    assert comparable(runs[0].trajectories) == comparable(runs[1].trajectories)
    assert runs[1].summary.completion_tokens > 0
    assert runs[1].trajectories[0].policy["temperature"] == 1.0


def test_generate_command_writes_a_store_and_a_rerun_adds_only_missing_episodes(tmp_path, swirl):
    out = tmp_path / "run" / "trajectories.jsonl"
    common = ["generate", "--env", "swirl/SynthMath-v0", "--env-kwargs", '{"num_tasks": 10}']
    common += ["--split", "test", "--policy", "noisy-oracle", "--noise", "0.5", "--num-tasks", "4"]
    common += ["--out", str(out)]
    first = swirl(*common, "--samples", "2", "--no-progress")
    assert first.code == 0 and "8 episodes (0 already stored)" in first.out
    second = swirl(*common, "--samples", "3", "--no-progress")
    assert second.code == 0 and "4 episodes (8 already stored)" in second.out
    stored = list(load_trajectories(out))
    assert len({t.key for t in stored}) == 12
    assert all(t.env_kwargs == {"num_tasks": 10, "split": "test"} for t in stored)
    assert stored[0].policy == {"name": "noisy-oracle", "p": 0.5}


def test_generate_command_reports_bad_arguments_clearly(tmp_path, swirl):
    out = str(tmp_path / "t.jsonl")
    cases = [
        (["--policy", "gpt"], "unknown policy 'gpt'"),
        (["--split", "val", "--policy", "oracle"], "split must be one of"),
        (["--env-kwargs", '{"colour": 1}', "--policy", "oracle"], "colour"),
    ]
    for extra, message in cases:
        run = swirl("generate", "--env", "swirl/SynthMath-v0", *extra, "--out", out)
        assert run.code == 2 and message in run.err and run.err.startswith("swirl generate: ")
        assert run.err.count("\n") == 1  # one line, no traceback
    assert not Path(out).exists()

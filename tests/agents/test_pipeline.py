"""Stage orchestration: completion markers, skipping, and atomic outputs."""

from __future__ import annotations

import json

import pytest

from swirl_agents.config import load_config
from swirl_agents.stages import DONE, StageError, make_env, run_stage, stage_summary, write_json
from swirl_agents.stages.envs import eval_split
from swirl_agents.stages.recipe import held_out_env
from swirl_agents.store import write_trajectories
from swirl_agents.trajectory import Step, Trajectory


def test_a_finished_stage_is_skipped(tmp_path):
    calls = []

    def work():
        calls.append(1)
        return {"summary": "did it", "n": 3}

    lines = []
    first = run_stage(tmp_path / "s", "s", work, log=lines.append)
    second = run_stage(tmp_path / "s", "s", work, log=lines.append)
    assert calls == [1]
    assert first == second and first["n"] == 3 and "seconds" in first
    assert "already done" in lines[1]


def test_a_failed_stage_leaves_no_marker_and_reruns(tmp_path):
    def fail():
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        run_stage(tmp_path / "s", "s", fail, log=lambda _: None)
    assert stage_summary(tmp_path / "s") is None
    assert (
        run_stage(tmp_path / "s", "s", lambda: {"summary": "ok"}, log=lambda _: None)["summary"]
        == "ok"
    )


def test_corrupt_marker_names_its_file(tmp_path):
    (tmp_path / DONE).write_text("{torn", encoding="utf-8")
    with pytest.raises(ValueError, match=DONE):
        stage_summary(tmp_path)


def test_write_json_leaves_no_temporary(tmp_path):
    path = write_json(tmp_path / "a" / "x.json", {"b": 1})
    assert json.loads(path.read_text()) == {"b": 1}
    assert [p.name for p in path.parent.iterdir()] == ["x.json"]


def test_write_trajectories_creates_its_folder_and_round_trips(tmp_path):
    from swirl_agents.store import load_trajectories

    trajectory = Trajectory(
        "t/0", 0, "env", "q", ["5"], "Solve.\n\nQuestion: q\n", steps=[Step("<answer>5</answer>")]
    )
    path = write_trajectories(tmp_path / "new" / "judged.jsonl", [trajectory])
    assert [t.to_dict() for t in load_trajectories(path)] == [trajectory.to_dict()]
    assert [p.name for p in path.parent.iterdir()] == ["judged.jsonl"]


def test_make_env_sizes_generated_envs():
    family = load_config(None, ["families.0.test_tasks=7"]).families[0]
    env = held_out_env(family, 3)
    assert len(env.unwrapped.tasks) == 7
    assert all(task.meta["split"] == "test" for task in env.unwrapped.tasks)


def test_make_env_sizes_generated_envs_only_and_names_what_is_wrong(tmp_path):
    from tests.envs.dataset_fixtures import HOTPOTQA, write_hotpotqa

    generated = make_env("swirl/SynthMath-v0", {"min_ops": 2}, split="test", num_tasks=5, seed=1)
    assert len(generated.unwrapped.tasks) == 5
    data = {"data_path": str(write_hotpotqa(tmp_path))}
    loaded = make_env("swirl/HotPotQA-v0", data, split="dev", num_tasks=1, seed=1)
    assert len(loaded.unwrapped.tasks) == len(HOTPOTQA)  # the stages take the first N
    with pytest.raises(StageError, match="cannot make env 'swirl/Nope-v0'"):
        make_env("swirl/Nope-v0")
    with pytest.raises(StageError, match="colour"):
        make_env("swirl/SynthMath-v0", {"colour": "red"})
    with pytest.raises(StageError, match="no split 'test'"):
        make_env("swirl/HotPotQA-v0", data, split="test")
    assert eval_split("swirl/HotPotQA-v0") == "dev" and eval_split("swirl/GSM8K-v0") == "test"


FAMILY = (
    "families=[{name: math, env_id: swirl/SynthMath-v0, train_tasks: 40, test_tasks: 12, "
    "env_kwargs: {min_ops: 2, max_ops: 3, max_steps: 5, system_prompt: 'Compute, then answer.'}, "
    "confusions: {give_away: '+'}}]"
)
TINY = ["--quick", "--set", FAMILY, "--set", "train.steps=6", "--set", "train.save_every=2",
        "--set", "warmup.steps=6", "--set", "generate.batch_size=8",
        "--set", "judge.filter=none"]  # fmt: skip


def _demo(out, wait_for=None):
    """Run ``swirl demo`` on the tiny config; with ``wait_for``, kill it once that path exists."""
    import subprocess
    import sys
    import time

    command = [sys.executable, "-m", "swirl_agents.cli", "demo", *TINY, "--out", str(out)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if wait_for is None:
        assert process.wait(timeout=900) == 0
        return
    while not wait_for() and process.poll() is None:
        time.sleep(0.05)
    process.kill()
    process.wait()


def _episodes(path):
    from swirl_agents.store import load_trajectories

    return sorted((t.key, [s.action for s in t.steps], t.score) for t in load_trajectories(path))


@pytest.mark.slow
def test_demo_end_to_end_killed_in_generate_and_train_resumes_to_identical_outputs(tmp_path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    _demo(whole)
    family = killed / "seed-0" / "math"
    samples = family / "samples" / "trajectories.jsonl"
    _demo(killed, lambda: samples.is_file() and samples.stat().st_size > 0)
    assert stage_summary(family / "samples") is None  # killed mid-stage
    _demo(killed, lambda: (family / "swirl" / "checkpoint-2").is_dir())
    assert stage_summary(family / "swirl") is None
    _demo(killed)
    reference = whole / "seed-0" / "math"
    assert _episodes(samples) == _episodes(reference / "samples" / "trajectories.jsonl")
    for name in ("base", "swirl"):
        for temperature in ("0", "1"):
            a = stage_summary(reference / "eval" / f"{name}-t{temperature}")
            b = stage_summary(family / "eval" / f"{name}-t{temperature}")
            assert a["accuracy"] == b["accuracy"]
    assert _episodes(family / "eval" / "swirl-t1" / "trajectories.jsonl") == _episodes(
        reference / "eval" / "swirl-t1" / "trajectories.jsonl"
    )
    for path in (whole, killed):
        assert (path / "report.md").is_file() and (path / "accuracy.png").is_file()
        assert (path / "config.yaml").is_file()

"""The trajectory store: atomic lines, torn-line repair, resume keys, clear errors."""

from __future__ import annotations

import json

import pytest

from swirl_agents.store import TornLineWarning, TrajectoryStore, load_trajectories
from swirl_agents.trajectory import Step, Trajectory


def make_trajectory(task_id: str = "t0", sample: int = 0, **extra) -> Trajectory:
    return Trajectory(
        task_id=task_id,
        sample=sample,
        env_id="swirl/Test-v0",
        question="What is 2 + 3?",
        answers=["5"],
        prompt="Solve.\n\nQuestion: What is 2 + 3?\n",
        steps=[
            Step(
                "<math_exp>2 + 3</math_exp>",
                "\n2 + 3 -> 5\n",
                tool="calculator",
                tool_input="2 + 3",
            ),
            Step("<answer>5</answer>", answer="5", reward=1.0),
        ],
        score=1.0,
        metrics={"score": 1.0, "numeric": 1.0},
        terminated=True,
        seed=123,
        policy={"name": "oracle"},
        timing={"policy_seconds": 0.1, "env_seconds": 0.01, "wall_seconds": 0.2},
        meta={"index": 0, "note": "Ünïcode ✓"},
        **extra,
    )


def test_appended_trajectories_load_back_as_equal_typed_objects(tmp_path):
    path = tmp_path / "run" / "trajectories.jsonl"
    written = [make_trajectory("t0", 0), make_trajectory("t0", 1), make_trajectory("t1", 0)]
    with TrajectoryStore(path) as store:
        store.append(written[:2])
        store.append(written[2:])
        assert len(store) == 3 and ("t0", 1) in store
    loaded = list(load_trajectories(path))
    assert loaded == written
    assert isinstance(loaded[0].steps[0], Step)
    assert loaded[0].state(1) == written[0].prompt + "<math_exp>2 + 3</math_exp>\n2 + 3 -> 5\n"
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) == 4
    assert all(json.loads(line)["schema_version"] == 1 for line in lines[:-1])


def test_reopened_store_knows_its_episodes_and_refuses_duplicates(tmp_path):
    path = tmp_path / "t.jsonl"
    with TrajectoryStore(path) as store:
        store.append([make_trajectory("t0", 0)])
    with TrajectoryStore(path) as store:
        assert store.keys == {("t0", 0)}
        with pytest.raises(ValueError, match="already stored"):
            store.append([make_trajectory("t0", 0)])
        with pytest.raises(ValueError, match="already stored"):
            store.append([make_trajectory("t1", 0), make_trajectory("t1", 0)])
    assert len(list(load_trajectories(path))) == 1


def test_torn_last_line_without_newline_is_cut_with_a_warning(tmp_path):
    path = tmp_path / "t.jsonl"
    with TrajectoryStore(path) as store:
        store.append([make_trajectory("t0", 0), make_trajectory("t1", 0)])
    whole = path.read_bytes()
    torn_line = json.dumps(make_trajectory("t2", 0).to_dict()).encode()[:57]
    path.write_bytes(whole + torn_line)
    with pytest.warns(TornLineWarning, match="torn last line"):
        store = TrajectoryStore(path)
    with store:
        assert path.read_bytes() == whole
        assert store.keys == {("t0", 0), ("t1", 0)}
        store.append([make_trajectory("t2", 0)])
    assert [t.task_id for t in load_trajectories(path)] == ["t0", "t1", "t2"]


def test_last_line_that_is_not_json_is_cut_too(tmp_path):
    path = tmp_path / "t.jsonl"
    with TrajectoryStore(path) as store:
        store.append([make_trajectory("t0", 0)])
    whole = path.read_bytes()
    path.write_bytes(whole + b'{"task_id": "t1", "sam\n')
    with pytest.warns(TornLineWarning):
        TrajectoryStore(path).close()
    assert path.read_bytes() == whole


def test_a_single_torn_line_in_a_new_file_is_cut(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_bytes(b'{"task_id": "t')
    with pytest.warns(TornLineWarning), TrajectoryStore(path) as store:
        assert len(store) == 0
    assert path.read_bytes() == b""


def test_corrupt_middle_line_names_file_and_line(tmp_path):
    path = tmp_path / "t.jsonl"
    good = json.dumps(make_trajectory("t0", 0).to_dict())
    path.write_text(f"{good}\nnot json at all\n{json.dumps(make_trajectory('t1', 0).to_dict())}\n")
    with pytest.raises(ValueError, match=rf"{path}:2: not a valid trajectory"):
        list(load_trajectories(path))
    with pytest.raises(ValueError, match=rf"{path}:2"):
        TrajectoryStore(path)


def test_wrong_schema_and_missing_fields_name_the_line(tmp_path):
    path = tmp_path / "t.jsonl"
    record = make_trajectory().to_dict()
    path.write_text(json.dumps({**record, "schema_version": 99}) + "\n")
    with pytest.raises(ValueError, match=r":1: .*schema_version 99"):
        list(load_trajectories(path))
    del record["prompt"]
    path.write_text(json.dumps(record) + "\n")
    with pytest.raises(ValueError, match=r":1: .*malformed trajectory"):
        list(load_trajectories(path))


def test_duplicate_episode_on_disk_is_reported(tmp_path):
    path = tmp_path / "t.jsonl"
    line = json.dumps(make_trajectory("t0", 0).to_dict())
    path.write_text(f"{line}\n{line}\n")
    with pytest.raises(ValueError, match=r":2: episode \('t0', 0\) is stored twice"):
        TrajectoryStore(path)


def test_unserialisable_trajectory_is_a_clear_error_and_writes_nothing(tmp_path):
    path = tmp_path / "t.jsonl"
    with TrajectoryStore(path) as store:
        with pytest.raises(ValueError, match=r"episode \('t0', 0\) cannot be stored as JSON"):
            store.append([make_trajectory("t0", 0, env_kwargs={"bad": object()})])
        assert len(store) == 0
    assert path.read_bytes() == b""


def test_second_writer_on_the_same_file_fails_at_once(tmp_path):
    path = tmp_path / "t.jsonl"
    with TrajectoryStore(path):
        with pytest.raises(RuntimeError, match="open for writing in another process"):
            TrajectoryStore(path)
    TrajectoryStore(path).close()  # the lock is released on close

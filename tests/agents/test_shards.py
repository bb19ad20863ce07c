"""Sharded stages: the partition, sharded generate and judge, and every refusal of the merge."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from swirl_agents.policies import NoisyOraclePolicy
from swirl_agents.stages import (
    JudgeSettings,
    Shard,
    StageError,
    generate,
    judge,
    make_env,
    merge_shards,
)
from swirl_agents.stages.shards import record_path, shard_index
from swirl_agents.store import load_trajectories
from tests.envs.dataset_fixtures import GSM8K, write_gsm8k

MATH = "swirl/SynthMath-v0"


def lines_without_timing(path: Path) -> dict[tuple[str, int], str]:
    """Each stored episode's JSON line minus wall-clock timing (the one field runs differ in)."""
    lines = {}
    for trajectory in load_trajectories(path):
        record = trajectory.to_dict()
        record.pop("timing")
        lines[trajectory.key] = json.dumps(record, ensure_ascii=False)
    return lines


def run_shards(folder: Path, count: int, *, noise: float = 0.4, seed: int = 0) -> list[Path]:
    """``generate`` a 10-task, 2-sample SynthMath run as ``count`` shards; their files."""
    paths = []
    for index in range(count):
        path = folder / f"samples.{index}.jsonl"
        env = make_env(MATH, num_tasks=10)
        generate(env, NoisyOraclePolicy(noise), path, samples=2, seed=seed, batch_size=3,
                 fsync=False, shard=Shard(index, count))  # fmt: skip
        paths.append(path)
    return paths


# ---- the partition ---------------------------------------------------------------------------


def test_shards_are_disjoint_complete_balanced_and_independent_of_order():
    keys = [(f"task-{i}", sample) for i in range(2000) for sample in range(4)]
    for count in (1, 2, 3, 8):
        members = [[key for key in keys if key in Shard(index, count)] for index in range(count)]
        assert sum(len(part) for part in members) == len(keys)  # each key in one shard only
        assert set().union(*map(set, members)) == set(keys)
        assert all(abs(len(part) - len(keys) / count) < 0.1 * len(keys) / count for part in members)
        backwards = {key for key in reversed(keys) if key in Shard(0, count)}
        assert backwards == set(members[0])


def test_shard_membership_is_a_stable_hash_every_machine_agrees_on():
    # pinned: Python's own hash() would differ between processes (PYTHONHASHSEED)
    assert [shard_index(f"task-{i}", s, 8) for i in range(3) for s in range(2)] == [
        4,
        2,
        7,
        7,
        3,
        4,
    ]


@pytest.mark.parametrize("text, shard", [("3/8", Shard(3, 8)), (" 0/1 ", Shard(0, 1))])
def test_a_shard_parses_from_i_slash_n(text, shard):
    assert Shard.parse(text) == shard and str(shard) == text.strip()


@pytest.mark.parametrize(
    "text, message",
    [("8/8", "0-based, from 0 to 7"), ("-1/8", "0-based"), ("0/0", "at least 1"),
     ("3", "expected I/N"), ("a/8", "expected I/N"), ("1/2/3", "expected I/N")],
)  # fmt: skip
def test_a_bad_shard_is_refused_with_what_to_write(text, message):
    with pytest.raises(StageError, match=message):
        Shard.parse(text)


# ---- sharded generate and judge ---------------------------------------------------------------


def test_shards_run_the_whole_runs_episodes_byte_for_byte_and_merge_into_it(tmp_path):
    whole = tmp_path / "whole.jsonl"
    generate(make_env(MATH, num_tasks=10), NoisyOraclePolicy(0.4), whole, samples=2,
             batch_size=7, fsync=False)  # fmt: skip
    expected = lines_without_timing(whole)
    paths = run_shards(tmp_path, 3)
    for index, path in enumerate(paths):
        mine = {key: line for key, line in expected.items() if key in Shard(index, 3)}
        assert lines_without_timing(path) == mine
        record = json.loads(record_path(path).read_text())
        assert record["shard"] == {"index": index, "count": 3}
        assert record["episodes"] == len(mine) and record["run"]["episodes"] == len(expected)

    summary = merge_shards(paths, tmp_path / "merged.jsonl")
    assert summary["trajectories"] == len(expected) == 20
    assert lines_without_timing(tmp_path / "merged.jsonl") == expected
    keys = [t.key for t in load_trajectories(tmp_path / "merged.jsonl")]
    assert keys == sorted(expected)  # task order, whatever order the shards finished in
    resumed = generate(make_env(MATH, num_tasks=10), NoisyOraclePolicy(0.4),
                       tmp_path / "merged.jsonl", samples=2, fsync=False)  # fmt: skip
    assert resumed["episodes_run_now"] == 0  # the merged file is the whole run's
    with pytest.raises(StageError, match="is one of the shard files"):
        merge_shards(paths, paths[0])


def test_a_shard_resumes_and_its_output_takes_no_other_run(tmp_path):
    (path,) = run_shards(tmp_path, 1)
    again = generate(make_env(MATH, num_tasks=10), NoisyOraclePolicy(0.4), path, samples=2,
                     fsync=False, shard=Shard(0, 1))  # fmt: skip
    assert again["episodes_run_now"] == 0 and again["episodes_resumed"] == 20
    env = make_env(MATH, num_tasks=10)
    with pytest.raises(StageError, match=r"shard 0/1 .*run\.samples"):
        generate(env, NoisyOraclePolicy(0.4), path, samples=3, fsync=False, shard=Shard(0, 1))
    with pytest.raises(StageError, match="pass --shard 0/1 to resume it"):
        generate(env, NoisyOraclePolicy(0.4), path, samples=2, fsync=False)
    empty = tmp_path / "empty.jsonl"  # killed before its first episode: any run may take it
    record_path(empty).write_text(record_path(path).read_text())
    generate(env, NoisyOraclePolicy(0.4), empty, samples=1, fsync=False, shard=Shard(1, 2))
    assert json.loads(record_path(empty).read_text())["shard"] == {"index": 1, "count": 2}
    empty.write_text("")
    generate(env, NoisyOraclePolicy(0.4), empty, samples=1, fsync=False)
    assert not record_path(empty).exists()
    unsharded = tmp_path / "unsharded.jsonl"
    generate(env, NoisyOraclePolicy(0.4), unsharded, samples=1, fsync=False)
    with pytest.raises(StageError, match="of an unsharded run"):
        generate(env, NoisyOraclePolicy(0.4), unsharded, samples=1, fsync=False, shard=Shard(0, 2))


def test_sharded_judging_merges_into_the_unsharded_verdicts(tmp_path):
    samples = tmp_path / "samples.jsonl"
    generate(make_env(MATH, num_tasks=10), NoisyOraclePolicy(0.4), samples, samples=2, fsync=False)
    settings = JudgeSettings(process="programmatic", outcome="programmatic")
    quiet = {"log": lambda line: None}
    judge(samples, tmp_path / "judged.jsonl", settings, **quiet)
    paths = [tmp_path / f"judged.{index}.jsonl" for index in range(2)]
    for index, path in enumerate(paths):
        judge(samples, path, settings, shard=Shard(index, 2), **quiet)
    merge_shards(paths, tmp_path / "merged.jsonl")
    assert lines_without_timing(tmp_path / "merged.jsonl") == lines_without_timing(
        tmp_path / "judged.jsonl"
    )
    other = JudgeSettings(process="programmatic", outcome="programmatic", process_prompt="math")
    with pytest.raises(StageError, match=r"run\.settings"):
        judge(samples, paths[1], other, shard=Shard(1, 2), **quiet)


# ---- merge refusals ---------------------------------------------------------------------------


def _drop_last_line(paths: list[Path], folder: Path) -> tuple[list[Path], str]:
    lines = paths[0].read_text().splitlines(keepends=True)
    paths[0].write_text("".join(lines[:-1]))
    return paths, rf"{paths[0]} is incomplete: {len(lines) - 1} of shard 0/3's {len(lines)}"


def _leave_one_out(paths: list[Path], folder: Path) -> tuple[list[Path], str]:
    return [paths[0], paths[2]], "shard 1 of 3 missing"


def _copy_a_shard(paths: list[Path], folder: Path) -> tuple[list[Path], str]:
    copy = folder / "copy.jsonl"
    shutil.copy(paths[1], copy)
    shutil.copy(record_path(paths[1]), record_path(copy))
    return [*paths, copy], rf"{copy} and {paths[1]} are both shard 1/3 \(overlapping\)"


def _add_another_shards_episode(paths: list[Path], folder: Path) -> tuple[list[Path], str]:
    stray = paths[1].read_text().splitlines(keepends=True)[0]
    with open(paths[0], "a") as handle:
        handle.write(stray)
    return paths, rf"{paths[0]} holds episode .* belongs to shard 1/3, not 0/3 \(overlapping\)"


def _repeat_an_episode(paths: list[Path], folder: Path) -> tuple[list[Path], str]:
    first = paths[0].read_text().splitlines(keepends=True)[0]
    with open(paths[0], "a") as handle:
        handle.write(first)
    return paths, rf"{paths[0]} holds an episode twice"


def _add_an_episode_of_no_task_of_the_run(
    paths: list[Path], folder: Path
) -> tuple[list[Path], str]:
    record = json.loads(paths[0].read_text().splitlines()[0])
    record["task_id"] = next(f"stray-{i}" for i in range(100) if (f"stray-{i}", 0) in Shard(0, 3))
    record["sample"] = 0
    with open(paths[0], "a") as handle:
        handle.write(json.dumps(record) + "\n")
    return paths, rf"{paths[0]} does not hold shard 0/3's episodes as its record"


def _other_shard_count(paths: list[Path], folder: Path) -> tuple[list[Path], str]:
    (other,) = run_shards(folder / "two", 2)[:1]
    return [*paths, other], rf"{other} is shard 0/2 but {paths[0]} is shard 0/3"


def _other_policy(paths: list[Path], folder: Path) -> tuple[list[Path], str]:
    others = run_shards(folder / "other", 3, noise=0.1)
    return [*paths[:2], others[2]], rf"{others[2]} is a shard of another run .*run\.policy"


def _other_seed(paths: list[Path], folder: Path) -> tuple[list[Path], str]:
    others = run_shards(folder / "other", 3, seed=1)
    return [others[0], *paths[1:]], rf"{paths[1]} is a shard of another run .*run\.seed"


def _no_record(paths: list[Path], folder: Path) -> tuple[list[Path], str]:
    record_path(paths[2]).unlink()
    return paths, rf"{paths[2]} has no shard record"


@pytest.mark.parametrize(
    "break_shards",
    [_drop_last_line, _leave_one_out, _copy_a_shard, _add_another_shards_episode,
     _repeat_an_episode, _add_an_episode_of_no_task_of_the_run, _other_shard_count,
     _other_policy, _other_seed, _no_record],
)  # fmt: skip
def test_merge_refuses_shards_that_are_not_one_whole_run(tmp_path, break_shards):
    paths, message = break_shards(run_shards(tmp_path, 3), tmp_path)
    out = tmp_path / "merged.jsonl"
    with pytest.raises(StageError, match=message):
        merge_shards(paths, out)
    assert not out.exists()


# ---- the command line -------------------------------------------------------------------------


@pytest.mark.parametrize("data", ["generated", "gsm8k"])
def test_generate_judge_and_merge_in_shards_through_the_cli(tmp_path, swirl, data):
    if data == "gsm8k":
        kwargs = {"data_path": str(write_gsm8k(tmp_path / "data"))}
        env = ["--env", "swirl/GSM8K-v0", "--env-kwargs", json.dumps(kwargs)]
        episodes = 3 * len(GSM8K)
    else:
        env = ["--env", MATH, "--num-tasks", "8"]
        episodes = 3 * 8
    run = [*env, "--policy", "noisy-oracle", "--samples", "3", "--no-progress", "--no-fsync"]
    judges = ["--process", "programmatic", "--outcome", "programmatic", "--no-cache"]

    assert swirl("generate", *run, "--out", tmp_path / "whole.jsonl").code == 0
    assert swirl("judge", "--in", tmp_path / "whole.jsonl", "--out",
                 tmp_path / "judged.jsonl", *judges).code == 0  # fmt: skip
    shards = [tmp_path / f"samples.{index}.jsonl" for index in range(3)]
    for index, path in enumerate(shards):  # one line per machine: --shard $INDEX/3
        done = swirl("generate", *run, "--shard", f"{index}/3", "--out", path)
        assert done.code == 0, done.err
    merged = swirl("merge", "--in", *shards, "--out", tmp_path / "samples.jsonl")
    assert merged.code == 0, merged.err
    assert f"merged 3 generate shards: {episodes} trajectories" in merged.out
    assert lines_without_timing(tmp_path / "samples.jsonl") == lines_without_timing(
        tmp_path / "whole.jsonl"
    )

    judged = [tmp_path / f"judged.{index}.jsonl" for index in range(2)]
    for index, path in enumerate(judged):
        done = swirl("judge", "--in", tmp_path / "samples.jsonl", "--out", path, *judges,
                     "--shard", f"{index}/2")  # fmt: skip
        assert done.code == 0, done.err
    assert swirl("merge", "--in", *judged, "--out", tmp_path / "judged-merged.jsonl").code == 0
    assert lines_without_timing(tmp_path / "judged-merged.jsonl") == lines_without_timing(
        tmp_path / "judged.jsonl"
    )

    missing = swirl("merge", "--in", *shards[:2], "--out", tmp_path / "partial.jsonl")
    assert (
        missing.code == 2
        and missing.err == "swirl merge: shard 2 of 3 missing: 2 shard files given\n"
    )
    bad = swirl("generate", *run, "--shard", "3/3", "--out", tmp_path / "bad.jsonl")
    assert bad.code == 2 and bad.err.startswith("swirl generate: shard 3/3: the index is 0-based")

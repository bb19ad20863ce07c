"""The real-data benchmark scripts (benchmarks/gsm8k.py, hotpotqa.py, musique.py) on fixtures."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from swirl_agents.benchmark import PAPER_TABLE2
from swirl_agents.stages import score_episodes
from swirl_agents.store import load_trajectories
from swirl_agents.trajectory import Step, Trajectory
from tests.agents.fault_server import FaultServer
from tests.envs.dataset_fixtures import (
    GSM8K,
    HOTPOTQA,
    MUSIQUE,
    write_gsm8k,
    write_hotpotqa,
    write_musique,
)

SCRIPTS = {
    # script, fixture writer, dataset name, number of fixture questions
    "gsm8k": (write_gsm8k, "GSM8K", len(GSM8K)),
    "hotpotqa": (write_hotpotqa, "HotPotQA", len(HOTPOTQA)),
    "musique": (write_musique, "MuSiQue", len(MUSIQUE)),
}


def load_script(name: str, monkeypatch):
    """Import ``benchmarks/<name>.py`` as a module."""
    path = Path(__file__).parents[2] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


def run_script(name: str, tmp_path: Path, monkeypatch, *extra: str, out: str = "out") -> dict:
    writer, _, _ = SCRIPTS[name]
    data = writer(tmp_path / "data")
    module = load_script(name, monkeypatch)
    return module.run(["--data", str(data), "--out", str(tmp_path / out), *extra])


@pytest.mark.parametrize("name", SCRIPTS)
def test_oracle_scores_one_and_writes_per_question_jsonl_summary_and_table(
    name, tmp_path, monkeypatch, capsys
):
    _, dataset, questions = SCRIPTS[name]
    summary = run_script(name, tmp_path, monkeypatch, "--judge", "programmatic")
    printed = capsys.readouterr().out

    assert summary["episodes"] == questions and summary["questions"] == questions
    assert summary["accuracy"] == 1.0 and summary["judge_accuracy"] == 1.0
    assert summary["answered"] == 1.0
    assert summary["f1"] == (None if name == "gsm8k" else 1.0)
    assert summary["judge_unparseable"] == 0
    assert summary["mean_tokens_per_episode"] is None  # the oracle counts no tokens
    assert json.loads((tmp_path / "out" / "summary.json").read_text()) == summary

    episodes = list(load_trajectories(tmp_path / "out" / "episodes.jsonl"))
    judged = list(load_trajectories(summary["files"]["episodes"]))
    assert len(episodes) == len(judged) == questions
    assert all(t.meta["judgements"]["outcome"]["good"] is True for t in judged)
    assert summary["mean_steps"] == pytest.approx(sum(len(t.steps) for t in episodes) / questions)
    tool_calls = sum(step.tool is not None for t in episodes for step in t.steps)
    assert summary["mean_tool_calls"] == pytest.approx(tool_calls / questions)
    assert tool_calls > 0

    base, swirl = PAPER_TABLE2[dataset]
    assert f"| paper base (Gemma-2-27B) | {base:.3f} |" in printed
    assert f"| paper SWiRL | {swirl:.3f} |" in printed
    assert "| ours (oracle) | 1.000 | 1.000 |" in printed
    assert f"{dataset} (judge acc.)" in printed
    assert "judge accuracy of Gemma-2-27B on the paper's own setup" in printed


@pytest.mark.parametrize("name", SCRIPTS)
def test_random_policy_scores_below_one(name, tmp_path, monkeypatch, capsys):
    summary = run_script(name, tmp_path, monkeypatch, "--policy", "random", "--samples", "3")
    _, _, questions = SCRIPTS[name]
    assert summary["episodes"] == 3 * questions
    assert summary["accuracy"] < 1.0
    assert summary["judge_accuracy"] is None
    assert "| ours (random) | – |" in capsys.readouterr().out


def test_rerun_resumes_and_runs_only_missing_episodes(tmp_path, monkeypatch, capsys):
    first = run_script("hotpotqa", tmp_path, monkeypatch, "--limit", "1", "--judge", "programmatic")
    assert first["episodes"] == 1 and first["episodes_run_now"] == 1
    second = run_script("hotpotqa", tmp_path, monkeypatch, "--judge", "programmatic")
    assert second["episodes_resumed"] == 1
    assert second["episodes_run_now"] == 1 and second["episodes"] == len(HOTPOTQA) == 2
    third = run_script("hotpotqa", tmp_path, monkeypatch, "--judge", "programmatic")
    assert third["episodes_run_now"] == 0 and third["accuracy"] == second["accuracy"]
    stored = list(load_trajectories(tmp_path / "out" / "episodes.jsonl"))
    judged = list(load_trajectories(third["files"]["episodes"]))
    assert sorted(t.key for t in stored) == sorted(t.key for t in judged)
    assert len({t.key for t in stored}) == len(stored) == len(HOTPOTQA)
    # a smaller --limit scores only the questions it names, from the stored episodes
    fewer = run_script("hotpotqa", tmp_path, monkeypatch, "--limit", "1")
    assert fewer["episodes"] == 1 and fewer["episodes_run_now"] == 0


def test_another_policy_into_the_same_output_is_refused(tmp_path, monkeypatch, capsys):
    run_script("gsm8k", tmp_path, monkeypatch)
    with pytest.raises(SystemExit, match="holds episodes of policy"):
        run_script("gsm8k", tmp_path, monkeypatch, "--policy", "noisy-oracle")


def test_model_judge_verdicts_make_judge_accuracy(tmp_path, monkeypatch, capsys):
    """An endpoint judge that says NO to every answer: EM stays 1, judge accuracy is 0."""
    with FaultServer(lambda body: "The answers differ. NO") as server:
        summary = run_script(
            "musique", tmp_path, monkeypatch,
            "--judge", f"openai:{server.base_url}", "--judge-model", "judge",
        )  # fmt: skip
        asked = len(server.requests)
    assert summary["accuracy"] == 1.0 and summary["judge_accuracy"] == 0.0
    assert asked == len(MUSIQUE)
    assert "paper's own setup" in capsys.readouterr().out
    judged = list(load_trajectories(summary["files"]["episodes"]))
    assert {t.meta["judgements"]["outcome"]["good"] for t in judged} == {False}


def test_openai_policy_reports_mean_tokens(tmp_path, monkeypatch, capsys):
    with FaultServer(lambda body: "It is <answer>72</answer>") as server:
        summary = run_script(
            "gsm8k", tmp_path, monkeypatch,
            "--policy", f"openai:{server.base_url}", "--model", "m", "--limit", "2",
        )  # fmt: skip
    assert summary["policy"] == f"openai:{server.base_url}#m"
    assert summary["accuracy"] == 0.5  # the first fixture's answer is 72, the second's 10
    tokens = summary["mean_tokens_per_episode"]
    assert tokens["prompt"] == 7 and tokens["completion"] > 0 and tokens["episodes_counted"] == 2


def test_unparseable_verdicts_count_as_wrong_and_are_reported():
    def episode(task_id: str, score: float) -> Trajectory:
        steps = [Step("<search_query>x</search_query>", tool="search"), Step("<answer>y</answer>")]
        return Trajectory(task_id, 0, "env", "q", ["y"], "prompt", steps, score=score)

    scores = score_episodes([episode("a", 1.0), episode("b", 0.0)], [True, None])
    assert scores["judge_accuracy"] == 0.5 and scores["judge_unparseable"] == 1
    assert scores["accuracy"] == 0.5
    assert scores["mean_steps"] == 2 and scores["mean_tool_calls"] == 1


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--judge", "gpt"], "unknown judge 'gpt'"),
        (["--judge", "openai:http://127.0.0.1:9/v1"], "needs --judge-model"),
        (["--policy", "smart"], "unknown policy 'smart'"),
        (["--limit", "0"], "--limit must be at least 1"),
    ],
)
def test_bad_arguments_exit_with_a_clear_message(extra, message, tmp_path, monkeypatch):
    with pytest.raises(SystemExit, match=message):
        run_script("hotpotqa", tmp_path, monkeypatch, *extra)
    assert not (tmp_path / "out" / "episodes.jsonl").exists()  # refused before any rollout


def test_corrupt_data_names_file_and_line(tmp_path, monkeypatch):
    data = write_gsm8k(tmp_path / "data")
    data.write_text(data.read_text() + "{not json\n")
    module = load_script("gsm8k", monkeypatch)
    with pytest.raises(SystemExit, match=rf"{data.name}, line 5: not valid JSON"):
        module.run(["--data", str(data), "--out", str(tmp_path / "out")])


def test_gsm8k_has_no_search_flag_and_help_lists_each_flag(monkeypatch, capsys):
    gsm8k, hotpotqa = load_script("gsm8k", monkeypatch), load_script("hotpotqa", monkeypatch)
    with pytest.raises(SystemExit):
        gsm8k.run(["--help"])
    printed = capsys.readouterr().out
    assert "--search" not in printed and "Episodes per question." in printed
    with pytest.raises(SystemExit):
        gsm8k.run(["--data", "x", "--search", "open"])
    with pytest.raises(SystemExit):
        hotpotqa.run(["--help"])
    assert "--search SEARCH" in capsys.readouterr().out

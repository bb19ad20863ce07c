"""Every example runs as a user runs it (a subprocess), in its fast mode, and prints its results.

``sb3_ppo.py`` and ``function_calling.py`` are run by ``tests/envs/test_wrappers.py``
and ``tests/envs/test_server.py``, ``swirl_offline_minimal.py`` by
``tests/test_minimal_example.py`` (in-process, against the library's trainer).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import pytest

import swirl_envs
from tests.agents.fault_server import FaultServer

gym.register_envs(swirl_envs)
ROOT = Path(__file__).resolve().parents[1]
ACCURACY = re.compile(r"accuracy on (\d+) episodes: (\d\.\d+)")


def run_example(name: str, *args: str, timeout: float = 240) -> str:
    """Run ``examples/NAME`` with ``args``; fail with its output unless it exits 0."""
    env = {**os.environ, "PYTHONHASHSEED": "0", "OPENAI_API_KEY": ""}
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / name), *args],
        capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env,
    )  # fmt: skip
    assert done.returncode == 0, f"{name} failed:\n{done.stdout}\n{done.stderr[-3000:]}"
    return done.stdout


def test_quickstart_agent_solves_most_test_problems():
    output = run_example("quickstart.py")
    accuracy = re.search(r"hand-written agent on 50 test problems: (\d\.\d+)", output)
    assert accuracy and float(accuracy.group(1)) >= 0.5
    assert "<answer>" in output  # the last transcript is printed


def gold_replies(tasks):
    """A scripted model: the gold action for the question and the number of turns so far."""
    by_question = {task.question: task for task in tasks}

    def respond(body):
        if "messages" in body:
            question = body["messages"][1]["content"].removeprefix("Question: ")
            step = sum(message["role"] == "assistant" for message in body["messages"])
        else:  # the transcript: answer at once, so the episode is one step
            question = body["prompt"].split("Question: ", 1)[1].split("\n", 1)[0]
            step = len(by_question[question].gold_path) - 1
        return "Next step. " + by_question[question].gold_path[step]

    return respond


@pytest.mark.parametrize("api", ["chat", "completions"])
def test_endpoint_agent_scores_the_replies_of_a_local_server(api):
    tasks = gym.make("swirl/SynthMath-v0", split="test").unwrapped.tasks[:6]
    with FaultServer(gold_replies(tasks), faults=["503"]) as server:
        output = run_example(
            "endpoint_agent.py", "--base-url", server.base_url, "--model", "scripted",
            "--episodes", "6", "--api", api,
        )  # fmt: skip
    assert ACCURACY.search(output).groups() == ("6", "1.000")
    steps = sum(len(task.gold_path) for task in tasks) if api == "chat" else len(tasks)
    assert len(server.requests) == steps + 1  # one retried after the injected 503
    assert {body["model"] for body in server.requests} == {"scripted"}


def test_endpoint_agent_reports_wrong_answers_as_wrong():
    with FaultServer(lambda body: "<answer>-1</answer>") as server:
        output = run_example(
            "endpoint_agent.py", "--base-url", server.base_url, "--model", "m", "--episodes", "4"
        )
    assert ACCURACY.search(output).groups() == ("4", "0.000")


def check_swirl_run(output: str, out: Path) -> None:
    """Samples were kept by the process filter, both models were trained and evaluated."""
    kept = re.search(r"filter process: kept (\d+)/(\d+) trajectories", output)
    assert kept and 0 < int(kept.group(1)) <= int(kept.group(2))
    table = re.findall(r"^(before|after)\s+(\d\.\d{3})\s+(\d\.\d{3})$", output, re.M)
    assert [name for name, *_ in table] == ["before", "after"]
    for name in ("base", "swirl"):
        assert (out / name / "final" / "config.json").is_file()
        assert (out / name / "metrics.jsonl").read_text().count("\n") >= 1


def test_train_your_model_runs_the_whole_loop_on_a_tiny_model(tmp_path):
    output = run_example("train_your_model.py", "--tiny", "--quick", "--out", str(tmp_path))
    check_swirl_run(output, tmp_path)


def test_custom_task_registers_checks_replays_and_trains(tmp_path):
    output = run_example("custom_task.py", "--quick", "--out", str(tmp_path))
    assert len(re.findall(r"^(\d+) of \1 gold paths replay to 1$", output, re.M)) == 2
    check_swirl_run(output, tmp_path)


def test_custom_task_tool_looks_units_up_and_rejects_anything_else():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "custom_task", ROOT / "examples" / "custom_task.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # registers custom/UnitConvert-v0
    env = gym.make("custom/UnitConvert-v0", split="test")
    env.reset(options={"index": 0})
    observation, *_ = env.step("<lookup> Weeks </lookup>")
    assert observation.endswith("Weeks -> weeks: 7 days each\n")
    observation, *_ = env.step("<lookup>__import__('os')</lookup>")
    assert "Error: no unit" in observation and "known: weeks" in observation
    train_questions = {task.question for task in module.make_tasks("train")}
    assert not train_questions & {task.question for task in env.unwrapped.tasks}


@pytest.mark.slow
def test_trl_grpo_trains_a_warmed_up_tiny_model_whose_tool_calls_step_the_env(tmp_path):
    """About 80 s on two shared cores (the warm-up is most of it); needs swirl-gym[trl]."""
    pytest.importorskip("trl")
    output = run_example(
        "trl_grpo.py", "--tiny", "--process-judge", "programmatic", "--out", str(tmp_path),
        timeout=600,
    )  # fmt: skip
    assert "trained 4 GRPO steps" in output
    logged = re.findall(
        r"^step (\d+): reward (\d\.\d+) \(env (\d\.\d+)\), tool calls per rollout (\d\.\d+)$",
        output, re.M,
    )  # fmt: skip
    assert [int(step) for step, *_ in logged] == [1, 2, 3, 4]
    assert sum(float(calls) for *_, calls in logged) > 0  # TRL ran the env's tools
    assert max(float(env) for _, _, env, _ in logged) > 0  # and the env scored an answer
    assert all(float(total) >= float(env) for _, total, env, _ in logged)  # + the process reward

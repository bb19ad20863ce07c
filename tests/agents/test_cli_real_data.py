"""Every ``swirl`` subcommand on real-data env ids (GSM8K, HotPotQA) from fixture files.

The whole pipeline runs through the command line as a user runs it: generate ->
judge -> filter -> train -> eval, then ``swirl demo`` with a real-data family and a
model to start from, and ``swirl serve`` on a data env.
"""

from __future__ import annotations

import json

import pytest
import yaml

from swirl_agents.store import load_trajectories
from tests.agents.training_fixtures import one_thread  # noqa: F401  (autouse fixture)
from tests.envs.dataset_fixtures import GSM8K, HOTPOTQA, write_gsm8k, write_hotpotqa

pytest.importorskip("torch")

# env id, fixture writer, judge flags, filter mode, training objective
DATASETS = {
    "gsm8k": ("swirl/GSM8K-v0", write_gsm8k, ["--process", "programmatic",
              "--outcome", "programmatic"], "process", "swirl-offline"),
    "hotpotqa": ("swirl/HotPotQA-v0", write_hotpotqa, ["--outcome", "programmatic"],
                 "outcome", "sft"),
}  # fmt: skip
"""HotPotQA has no programmatic process rule (any search can be sound): its answers are judged."""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny model whose tokenizer knows the fixtures' words (it has a chat template)."""
    from swirl_agents.tiny import build_tiny_model

    texts = [json.dumps(record) for record in [*GSM8K, *HOTPOTQA]] * 4
    return build_tiny_model(tmp_path_factory.mktemp("tiny"), texts, vocab_size=400)


@pytest.mark.parametrize("name", DATASETS)
def test_generate_judge_filter_train_eval_through_the_cli(name, tmp_path, swirl, tiny):
    env_id, write, judge_flags, mode, objective = DATASETS[name]
    env_kwargs = json.dumps({"data_path": str(write(tmp_path / "data"))})
    env = ["--env", env_id, "--env-kwargs", env_kwargs]
    runs = tmp_path / "runs"

    generated = swirl("generate", *env, "--policy", "noisy-oracle", "--noise", "0.4", "--samples",
                      "3", "--out", runs / "samples.jsonl", "--no-progress")  # fmt: skip
    assert generated.code == 0, generated.err
    samples = list(load_trajectories(runs / "samples.jsonl"))
    questions = len(GSM8K if name == "gsm8k" else HOTPOTQA)
    assert len(samples) == 3 * questions and {t.env_id for t in samples} == {env_id}

    judged = swirl("judge", "--in", runs / "samples.jsonl", "--out", runs / "judged.jsonl",
                   *judge_flags)  # fmt: skip
    assert judged.code == 0, judged.err
    assert len(list(load_trajectories(runs / "judged.jsonl"))) == len(samples)

    filtered = swirl("filter", "--in", runs / "judged.jsonl", "--out", runs / "kept.jsonl",
                     "--mode", mode)  # fmt: skip
    assert filtered.code == 0, filtered.err
    kept = list(load_trajectories(runs / "kept.jsonl"))
    assert 0 < len(kept) < len(samples)  # the noisy oracle's wrong episodes are dropped

    trained = swirl("train", "--data", runs / "kept.jsonl", "--model", tiny, "--out",
                    runs / "model", "--objective", objective, "--steps", "2", "--batch-size", "2",
                    "--micro-batch-size", "2", "--prompt-format", "text", "--no-progress",
                    "--max-new-tokens", "8")  # fmt: skip
    assert trained.code == 0, trained.err
    final = runs / "model" / "final"
    record = json.loads((final / "swirl_training.json").read_text())
    assert record["prompt_format"] == "text" and record["objective"] == objective

    evaluated = swirl("eval", "--model", final, *env, "--temperatures", "0", "--max-new-tokens",
                      "8", "--out", runs / "eval")  # fmt: skip
    assert evaluated.code == 0, evaluated.err
    report = json.loads((runs / "eval" / "eval.json").read_text())["0"]
    assert report["episodes"] == questions and 0.0 <= report["accuracy"] <= 1.0
    episodes = list(load_trajectories(runs / "eval" / "t0" / "trajectories.jsonl"))
    # the checkpoint's recorded layout, not the chat template its tokenizer also has
    assert {t.policy["prompt_format"] for t in episodes} == {"text"}


def test_each_subcommand_refuses_a_missing_data_file_in_one_line(tmp_path, swirl, tiny):
    missing = json.dumps({"data_path": str(tmp_path / "nowhere" / "test.jsonl")})
    env = ["--env", "swirl/GSM8K-v0", "--env-kwargs", missing]
    trajectories = tmp_path / "t.jsonl"
    runs = {
        "generate": ["generate", *env, "--policy", "oracle", "--out", trajectories],
        "eval": ["eval", "--model", tiny, *env, "--out", tmp_path / "eval"],
        "judge": ["judge", "--in", tmp_path / "none.jsonl", "--out", trajectories,
                  "--outcome", "programmatic"],
        "filter": ["filter", "--in", tmp_path / "none.jsonl", "--out", trajectories],
        "train": ["train", "--data", tmp_path / "none.jsonl", "--model", tiny],
        "serve": ["serve", *env, "--port", "9"],  # refuses to start: nothing is served
    }  # fmt: skip
    for command, argv in runs.items():
        run = swirl(*argv)
        assert run.code == 2, (command, run)
        assert run.err.startswith(f"swirl {command}: ") and run.err.count("\n") == 1, run.err
        assert "nowhere" in run.err or "none.jsonl" in run.err
    assert not trajectories.exists()


@pytest.mark.slow
def test_demo_runs_a_real_data_family_from_a_given_model(tmp_path, swirl, tiny):
    """``swirl demo --config`` with GSM8K: no warm-up (the model is the base), every other stage."""
    data = write_gsm8k(tmp_path / "data")
    config = {
        "out_dir": str(tmp_path / "run"), "workers": 1,
        "model": {"path": str(tiny), "prompt_format": "text"},
        "families": [{"name": "gsm8k", "env_id": "swirl/GSM8K-v0",
                      "env_kwargs": {"data_path": str(data)}, "train_split": "test",
                      "test_split": "test", "train_tasks": 4, "test_tasks": 4}],
        "generate": {"samples": 2, "max_new_tokens": 8},
        "judge": {"process": "programmatic", "outcome": "programmatic", "filter": "none"},
        "train": {"steps": 2, "batch_size": 2, "micro_batch_size": 2, "save_every": 0,
                  "controls": ["sft"], "progress": False},
        "eval": {"temperatures": [0.0], "max_new_tokens": 8},
    }  # fmt: skip
    path = tmp_path / "gsm8k.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    run = swirl("demo", "--config", path)
    assert run.code == 0, run.err
    family = tmp_path / "run" / "seed-0" / "gsm8k"
    for stage in ("samples", "judge", "swirl", "sft", "eval/base-t0", "eval/swirl-t0"):
        assert (family / stage / "done.json").is_file(), stage
    assert not (family / "warmup-data").exists()
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert set(results["seeds"]["0"]["gsm8k"]["eval"]) == {"base", "swirl", "sft"}
    assert (tmp_path / "run" / "report.md").is_file()


def test_serve_plays_a_real_data_env(tmp_path):
    from swirl_envs.client import RemoteEnv
    from swirl_envs.server import BackgroundServer, ServerConfig, create_app

    data = write_gsm8k(tmp_path / "data")
    config = ServerConfig(env_ids=("swirl/GSM8K-v0",), env_kwargs={"data_path": str(data)})
    with BackgroundServer(create_app(config)) as server:
        env = RemoteEnv(server.url)
        observation, _ = env.reset(options={"index": 0})
        assert GSM8K[0]["question"] in observation
        answer = GSM8K[0]["answer"].split("####")[-1].strip()
        _, reward, terminated, _, _ = env.step(f"<answer>{answer}</answer>")
        assert terminated and reward == 1.0
        env.close()

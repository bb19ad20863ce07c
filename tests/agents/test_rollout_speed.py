"""benchmarks/rollout_speed.py: every batch size runs the same episodes through the engine."""

from __future__ import annotations

import json

import pytest

from tests.agents.test_benchmarks import load_script

torch = pytest.importorskip("torch")


@pytest.fixture(autouse=True)
def keep_torch_threads():
    # The benchmark sets torch's thread count for the whole process.
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_batch_sizes_make_the_same_actions_and_the_json_records_them(tmp_path, monkeypatch):
    module = load_script("rollout_speed", monkeypatch)
    out, saved = tmp_path / "speed.json", tmp_path / "model"
    shape = {"hidden_size": 32, "num_heads": 4, "num_kv_heads": 2, "vocab_size": 300}
    results = module.main(
        [
            "--env-kwargs", '{"num_tasks": 6}',
            "--num-tasks", "6",
            "--batch-sizes", "1", "4",
            "--warmup-steps", "0",
            "--max-new-tokens", "8",
            "--tiny-kwargs", json.dumps(shape),
            "--save-model", str(saved),
            "--out", str(out),
        ]
    )  # fmt: skip
    assert json.loads(out.read_text()) == json.loads(json.dumps(results))
    one, four = results["rows"]
    assert (one["batch_size"], four["batch_size"]) == (1, 4)
    assert one["episodes"] == four["episodes"] == 6
    assert one["actions"] == four["actions"] > 0 and one["tool_calls"] == four["tool_calls"]
    assert results["speedup"] == pytest.approx(four["actions_per_s"] / one["actions_per_s"])
    assert 0 <= four["overhead"] < 1
    config = json.loads((saved / "config.json").read_text())
    assert (config["hidden_size"], config["num_key_value_heads"]) == (32, 2)

"""Checkpoints resume exactly: a run killed mid-way and resumed ends with the same weights."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from safetensors.torch import load_file  # noqa: E402

from swirl_agents.judges.base import hard_judgement  # noqa: E402
from swirl_agents.train import TrainConfig, Trainer  # noqa: E402
from swirl_agents.train.checkpoint import latest_checkpoint  # noqa: E402
from tests.agents.training_fixtures import (  # noqa: E402
    load_model,
    one_thread,  # noqa: F401
    write_store,
)

STEPS = 30


def metric_lines(out_dir):
    return [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]


def untimed(lines):
    """Metrics without wall-clock fields (which differ between runs)."""
    timing = {"tokens_per_s", "seconds", "sample_seconds"}
    return [{key: value for key, value in line.items() if key not in timing} for line in lines]


def train_command(data, model_dir, out_dir, *extra):
    return [
        sys.executable, "-m", "swirl_agents.train",
        "--data", str(data), "--model", str(model_dir), "--out", str(out_dir),
        "--objective", "swirl-offline", "--steps", str(STEPS), "--batch-size", "4",
        "--micro-batch-size", "2", "--lr", "1e-3", "--warmup-steps", "5",
        "--save-every", "10", "--no-progress", *extra,
    ]  # fmt: skip


def subprocess_env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}


def test_run_killed_after_a_checkpoint_resumes_to_the_same_final_weights(
    tmp_path, model_dir, trajectories
):
    data = write_store(tmp_path / "filtered.jsonl", trajectories)
    # The uninterrupted run, in this process (one thread, like the subprocesses).
    model, tokenizer = load_model(model_dir)
    settings = TrainConfig(
        data=str(data), model=str(model_dir), out_dir=str(tmp_path / "whole"),
        objective="swirl-offline", steps=STEPS, batch_size=4, micro_batch_size=2, lr=1e-3,
        warmup_steps=5, save_every=10, progress=False,
    )  # fmt: skip
    Trainer(settings, model, tokenizer, trajectories).train()

    killed = tmp_path / "killed"
    process = subprocess.Popen(
        train_command(data, model_dir, killed), env=subprocess_env(), stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    while not (killed / "checkpoint-10" / "trainer_state.pt").exists():
        assert process.poll() is None and time.monotonic() < deadline, "no checkpoint was written"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    interrupted_at = int(latest_checkpoint(killed).name.split("-")[1])
    assert interrupted_at < STEPS and not (killed / "final").exists()

    resumed = subprocess.run(
        train_command(data, model_dir, killed, "--resume"),
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    expected = load_file(tmp_path / "whole/final/model.safetensors")
    actual = load_file(killed / "final/model.safetensors")
    assert expected.keys() == actual.keys()
    assert all(torch.equal(expected[name], actual[name]) for name in expected)
    steps = [line["step"] for line in metric_lines(killed)]
    assert steps == list(range(1, STEPS + 1))
    assert [line["loss"] for line in metric_lines(killed)] == [
        line["loss"] for line in metric_lines(tmp_path / "whole")
    ]


class CoinJudge:
    """A process judge whose verdicts depend on the sampled text only."""

    name = "coin"

    def judge_process(self, queries):
        return [hard_judgement(sum(map(ord, q.action)) % 2 == 0, "", self.name) for q in queries]


@pytest.mark.parametrize("lora_r", [0, 4])
def test_online_run_resumed_in_process_samples_and_ends_the_same(
    tmp_path, model_dir, trajectories, lora_r
):
    def run(out_dir, steps, resume=False):
        model, tokenizer = load_model(model_dir)
        settings = TrainConfig(
            out_dir=str(out_dir), objective="swirl-online", steps=steps, batch_size=2,
            micro_batch_size=2, num_samples=2, max_new_tokens=6, lr=1e-2, save_every=2,
            lora_r=lora_r, kl_coef=0.05, resume=resume, progress=False, seed=5,
        )  # fmt: skip
        trainer = Trainer(settings, model, tokenizer, trajectories, judge=CoinJudge())
        trainer.train()
        return {name: p.detach().clone() for name, p in trainer.model.named_parameters()}

    whole = run(tmp_path / "whole", 4)
    run(tmp_path / "part", 4)
    for leftover in ("checkpoint-4", "final"):  # as if the run had died after step 3
        shutil.rmtree(tmp_path / "part" / leftover)
    torch.manual_seed(123)  # the resumed run must not depend on the RNG it starts with
    resumed = run(tmp_path / "part", 4, resume=True)
    assert all(torch.equal(whole[name], resumed[name]) for name in whole)
    assert untimed(metric_lines(tmp_path / "part")) == untimed(metric_lines(tmp_path / "whole"))


def test_latest_checkpoint_skips_unfinished_directories(tmp_path):
    assert latest_checkpoint(tmp_path) is None
    for name in ("checkpoint-2", "checkpoint-10", "checkpoint-12.tmp", "checkpoint-11"):
        (tmp_path / name).mkdir()
    for name in ("checkpoint-2", "checkpoint-10", "checkpoint-12.tmp"):
        (tmp_path / name / "trainer_state.pt").write_bytes(b"")
    assert latest_checkpoint(tmp_path) == tmp_path / "checkpoint-10"


def test_resume_with_a_different_data_order_is_refused(tmp_path, model_dir, trajectories):
    model, tokenizer = load_model(model_dir)
    settings = TrainConfig(
        out_dir=str(tmp_path), steps=2, batch_size=2, save_every=2, progress=False
    )
    Trainer(settings, model, tokenizer, trajectories).train()
    model, tokenizer = load_model(model_dir)
    changed = TrainConfig(out_dir=str(tmp_path), steps=4, batch_size=4, resume=True, progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        Trainer(changed, model, tokenizer, trajectories)

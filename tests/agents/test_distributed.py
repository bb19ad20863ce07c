"""Data parallelism: 2 gloo processes under torchrun take the same steps as 1 process."""

import os
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from safetensors.torch import load_file  # noqa: E402

from swirl_agents.train import TrainConfig, Trainer  # noqa: E402
from swirl_agents.train.distributed import (  # noqa: E402
    DistributedContext,
    all_reduce_sum,
    gradient_sync,
    shard,
    wrap_model,
)
from tests.agents.training_fixtures import (  # noqa: E402
    judged_trajectories,
    one_thread,  # noqa: F401
    tiny_model,
    write_store,
)

SETTINGS = {"steps": 3, "batch_size": 4, "micro_batch_size": 1, "lr": 1e-3, "save_every": 2}
SINGLE = DistributedContext(rank=0, world_size=1, device=torch.device("cpu"))


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A data file, a tiny model and the final weights of one process on the same batches."""
    root = tmp_path_factory.mktemp("distributed")
    trajectories = judged_trajectories()
    model_dir = tiny_model(root / "tiny", trajectories)
    data = write_store(root / "data.jsonl", trajectories)
    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
    config = TrainConfig(out_dir=str(root / "single"), progress=False, **SETTINGS)
    Trainer(config, model, tokenizer, trajectories).train()
    return data, model_dir, load_file(root / "single/final/model.safetensors")


def torchrun(data, model_dir, out_dir, *extra):
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "swirl_agents.train", "--data", str(data), "--model", str(model_dir),
        "--out", str(out_dir), "--no-progress",
        *(f"--{key.replace('_', '-')}={value}" for key, value in SETTINGS.items()), *extra,
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]


def assert_same_weights(expected, out_dir):
    actual = load_file(out_dir / "final/model.safetensors")
    for name, tensor in expected.items():
        assert torch.allclose(tensor, actual[name], atol=1e-5), name


def test_two_ddp_processes_take_the_same_steps_as_one(tmp_path, setup):
    data, model_dir, expected = setup
    start = load_file(model_dir / "model.safetensors")
    assert not torch.allclose(start["model.norm.weight"], expected["model.norm.weight"])
    torchrun(data, model_dir, tmp_path)
    assert_same_weights(expected, tmp_path)
    assert {f"rng-{rank}.pt" for rank in (0, 1)} <= {
        p.name for p in (tmp_path / "checkpoint-2").iterdir()
    }


@pytest.mark.slow
def test_two_fsdp_processes_take_the_same_steps_as_one_and_resume(tmp_path, setup):
    data, model_dir, expected = setup
    torchrun(data, model_dir, tmp_path, "--fsdp")
    assert_same_weights(expected, tmp_path)
    (tmp_path / "final/model.safetensors").unlink()
    torchrun(data, model_dir, tmp_path, "--fsdp", "--resume")  # from checkpoint-2
    assert_same_weights(expected, tmp_path)


def test_shard_gives_each_process_an_equal_contiguous_slice():
    items = list(range(8))
    slices = [shard(items, DistributedContext(r, 4, torch.device("cpu"))) for r in range(4)]
    assert slices == [[0, 1], [2, 3], [4, 5], [6, 7]]
    with pytest.raises(ValueError, match="does not split"):
        shard(items, DistributedContext(0, 3, torch.device("cpu")))


def test_one_process_needs_no_process_group():
    model = torch.nn.Linear(2, 2)
    assert wrap_model(model, SINGLE, fsdp=False) is model
    assert all_reduce_sum([1, 2.5], SINGLE) == [1.0, 2.5]
    with gradient_sync(model, enabled=False):
        model(torch.ones(1, 2)).sum().backward()
    assert model.weight.grad is not None
    with pytest.raises(ValueError, match="torchrun"):
        wrap_model(model, SINGLE, fsdp=True)

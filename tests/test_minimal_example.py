"""``examples/swirl_offline_minimal.py`` is the library's offline SWiRL objective, in plain torch.

On a tiny model and judged trajectories with varied step weights (1, 0, a soft 0.5 and an
unreadable verdict), its loss and every parameter's gradient equal those of one step of
``Trainer`` (objective ``swirl-offline``, prompt format ``text``) on the same batch, and its
token ids and action spans equal the library's, also for a tokenizer that merges tokens
across the end of an action.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from swirl_agents.decompose import tokenize_trajectory  # noqa: E402
from swirl_agents.train import TrainConfig, Trainer  # noqa: E402
from swirl_agents.train.data import step_rewards  # noqa: E402
from tests.agents.test_decompose import merging_tokenizer  # noqa: E402
from tests.agents.training_fixtures import (  # noqa: E402
    judged_trajectories,
    load_model,
    one_thread,  # noqa: F401
    tiny_model,
    write_store,
)

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "swirl_offline_minimal.py"


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("swirl_offline_minimal", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def trajectories():
    """The programmatic judge's 0/1 verdicts, plus a soft score and an unreadable verdict."""
    judged = judged_trajectories()
    first, second = (t.meta["judgements"]["process"] for t in judged[:2])
    first[0] = {**first[0], "score": 0.5}  # a model judge's P(GOOD)
    second[-1] = {**second[-1], "good": None, "score": None}  # weight 0, still one of the N
    return judged


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, trajectories):
    return tiny_model(tmp_path_factory.mktemp("tiny"), trajectories)


def library_loss_and_gradients(model, tokenizer, trajectories, out_dir):
    """The loss of one library training step on the whole list, and the gradients it steps on."""
    config = TrainConfig(
        objective="swirl-offline",
        weighting="judge",
        prompt_format="text",
        batch_size=len(trajectories),
        micro_batch_size=len(trajectories),
        max_grad_norm=0,  # no clipping: the raw gradient
        device="cpu",
        progress=False,
        out_dir=str(out_dir),
    )
    trainer = Trainer(config, model, tokenizer, trajectories)
    gradients = {}

    def record(optimizer, args, kwargs):
        gradients.update({name: p.grad.clone() for name, p in model.named_parameters()})

    trainer.optimizer.register_step_pre_hook(record)
    return trainer.train_step()["loss"], gradients


def test_the_example_gives_the_library_trainers_loss_and_gradients(
    example, trajectories, model_dir, tmp_path
):
    weights = {w for t in trajectories for w in step_rewards(t)}
    assert weights == {0.0, 0.5, 1.0}
    model, tokenizer = load_model(model_dir)
    loss = example.swirl_loss(model, tokenizer, trajectories)
    loss.backward()
    mine = {name: p.grad.clone() for name, p in model.named_parameters()}

    model, tokenizer = load_model(model_dir)
    library_loss, library = library_loss_and_gradients(model, tokenizer, trajectories, tmp_path)
    # A loss near 3 in float32, summed in another order: a few units in the last place apart.
    torch.testing.assert_close(loss.item(), library_loss, rtol=1e-6, atol=1e-6)
    assert mine.keys() == library.keys()
    for name in mine:
        torch.testing.assert_close(mine[name], library[name], rtol=0, atol=1e-6, msg=name)
    assert max(g.abs().max().item() for g in mine.values()) > 1e-3  # not trivially zero


def test_the_example_tokenizes_as_the_library_does(example, trajectories, model_dir):
    _, tiny = load_model(model_dir)  # a BOS in front, words kept apart
    merging = merging_tokenizer([t.transcript for t in trajectories] * 3)  # no BOS, merges
    for tokenizer in (tiny, merging):
        for trajectory in trajectories:
            library = tokenize_trajectory(trajectory, tokenizer, "text")
            ids, spans = example.tokenize(trajectory, tokenizer, max_length=4096)
            assert (tuple(ids), tuple(spans)) == (library.input_ids, library.action_spans)
    # The merging tokenizer is the case that needs piecewise encoding.
    whole = [tuple(merging(t.transcript)["input_ids"]) for t in trajectories]
    pieces = [tokenize_trajectory(t, merging, "text").input_ids for t in trajectories]
    assert whole != pieces


def test_main_trains_a_few_steps(example, trajectories, model_dir, tmp_path, capsys):
    data = write_store(tmp_path / "judged.jsonl", trajectories)
    losses = example.main(
        ["--model", str(model_dir), "--data", str(data), "--steps", "3", "--lr", "1e-2",
         "--out", str(tmp_path / "trained")]
    )  # fmt: skip
    assert len(losses) == 3 and all(loss > 0 for loss in losses)
    assert "step 3: loss" in capsys.readouterr().out
    assert (tmp_path / "trained" / "config.json").is_file()

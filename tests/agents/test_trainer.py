"""The trainer on a tiny model: one-pass equivalence, objectives, accumulation, LoRA, online RL."""

import argparse
import json

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from swirl_agents.commands.train import add_parser, config_from_args  # noqa: E402
from swirl_agents.decompose import decompose_trajectory, tokenize_sub_trajectory  # noqa: E402
from swirl_agents.judges.base import hard_judgement  # noqa: E402
from swirl_agents.train import TrainConfig, Trainer  # noqa: E402
from swirl_agents.train.data import (  # noqa: E402
    BatchSampler,
    TrainExample,
    collate,
    count_units,
    offline_examples,
    step_rewards,
)
from swirl_agents.train.losses import stepwise_loss  # noqa: E402
from swirl_agents.train.stepwise_rl import (  # noqa: E402
    SamplingConfig,
    cut_action,
    sample_and_judge,
)
from tests.agents.training_fixtures import (  # noqa: E402
    load_model,
    one_thread,  # noqa: F401
)


def weights(model):
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def config(tmp_path, **overrides):
    settings = {
        "out_dir": str(tmp_path / "run"),
        "steps": 3,
        "batch_size": 4,
        "micro_batch_size": 4,
        "lr": 1e-2,
        "progress": False,
        "lr_schedule": "constant",
    }
    settings.update(overrides)
    return TrainConfig(**settings)


def loss_and_gradients(model, examples, units, reduction, only_trained_positions=False):
    """Sum of the loss over forward passes of ``examples`` (each list is one pass).

    With ``only_trained_positions`` the logits are computed as the trainer does, at the
    positions that carry a trained label only; otherwise at every position.
    """
    model.zero_grad()
    total = 0.0
    for group in examples:
        batch = collate(group, pad_id=0)
        keep, labels, action_index = batch.trained_positions()
        if not only_trained_positions:
            keep, labels, action_index = 0, batch.labels, batch.action_index
        logits = model(
            input_ids=batch.input_ids, attention_mask=batch.attention_mask, logits_to_keep=keep
        ).logits
        loss = stepwise_loss(
            logits, labels, action_index, batch.weights, reduction=reduction, normalizer=units
        )
        loss.backward()
        total += loss.item()
    return total, {name: p.grad.clone() for name, p in model.named_parameters()}


@pytest.mark.parametrize("reduction", ["action_mean", "action_sum", "token"])
@pytest.mark.parametrize("layout", ["text", "chat"])
def test_one_pass_gives_the_same_loss_and_gradient_as_separate_sub_trajectories(
    model_dir, trajectories, layout, reduction
):
    model, tokenizer = load_model(model_dir)
    batch = trajectories[:4]
    one_pass = offline_examples(batch, tokenizer, max_length=4096, prompt_format=layout)
    separate = [
        TrainExample(tokenize_sub_trajectory(sub, tokenizer, layout), (step_rewards(t)[sub.step],))
        for t in batch
        for sub in decompose_trajectory(t)
    ]
    assert len(separate) == sum(len(t.steps) for t in batch) > len(one_pass)
    units = count_units(one_pass, reduction)
    assert units == count_units(separate, reduction)
    assert 0 < sum(w for e in separate for w in e.weights) < len(separate)  # rewards vary
    loss_one, grads_one = loss_and_gradients(model, [one_pass], units, reduction, True)
    loss_sep, grads_sep = loss_and_gradients(model, [[e] for e in separate], units, reduction)
    assert loss_one == pytest.approx(loss_sep, abs=1e-5)
    worst = max((grads_one[n] - grads_sep[n]).abs().max().item() for n in grads_one)
    assert worst <= 1e-5
    assert max(g.abs().max().item() for g in grads_one.values()) > 1e-3  # not trivially zero


def test_collate_shifts_labels_and_numbers_actions_across_the_batch(model_dir, trajectories):
    _, tokenizer = load_model(model_dir)
    examples = offline_examples(trajectories[:2], tokenizer, max_length=4096, weighting="uniform")
    batch = collate(examples, pad_id=tokenizer.pad_token_id)
    first = examples[0].tokens
    for number, (start, end) in enumerate(first.action_spans):
        assert (batch.action_index[0, start - 1 : end - 1] == number).all()
        assert batch.labels[0, start - 1 : end - 1].tolist() == list(first.input_ids[start:end])
    assert (
        batch.action_index[1].max().item()
        == len(first.action_spans) + len(examples[1].tokens.action_spans) - 1
    )
    assert (batch.labels[batch.action_index < 0] == -100).all()
    assert batch.weights.tolist() == [1.0] * batch.weights.numel()


def test_offline_weights_are_the_process_judge_scores(model_dir, trajectories):
    _, tokenizer = load_model(model_dir)
    examples = offline_examples(trajectories, tokenizer, max_length=4096)
    for trajectory, example in zip(trajectories, examples, strict=True):
        scores = [j["score"] for j in trajectory.meta["judgements"]["process"]]
        assert list(example.weights) == scores
    unjudged = [trajectories[0].__class__.from_dict({**trajectories[0].to_dict(), "meta": {}})]
    with pytest.raises(ValueError, match="no process judgements"):
        offline_examples(unjudged, tokenizer, max_length=4096)


def test_sft_trains_every_parameter_and_lowers_the_loss(tmp_path, model_dir, trajectories):
    model, tokenizer = load_model(model_dir)
    before = weights(model)
    trainer = Trainer(config(tmp_path, objective="sft", steps=12), model, tokenizer, trajectories)
    trainer.train()
    lines = [json.loads(line) for line in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == list(range(1, 13))
    assert {"loss", "lr", "grad_norm", "tokens_per_s"} <= set(lines[0])
    assert lines[-1]["loss"] < lines[0]["loss"]
    after = weights(model)
    assert all(not torch.equal(before[n], after[n]) for n in before)
    exported = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "run/final")
    assert torch.equal(exported.get_input_embeddings().weight, after["model.embed_tokens.weight"])


def test_steps_judged_bad_teach_nothing(tmp_path, model_dir, trajectories):
    bad = [t for t in trajectories if not any(step_rewards(t))]
    assert bad, "the fixture should hold a trajectory with every step judged bad"
    model, tokenizer = load_model(model_dir)
    before = weights(model)
    Trainer(config(tmp_path, batch_size=1, micro_batch_size=1), model, tokenizer, bad[:1]).train()
    assert all(torch.equal(before[n], p) for n, p in model.named_parameters())


def test_gradient_accumulation_matches_one_big_micro_batch(tmp_path, model_dir, trajectories):
    results = []
    for micro in (4, 1):
        model, tokenizer = load_model(model_dir)
        settings = config(tmp_path / str(micro), micro_batch_size=micro, lr=1e-3, max_grad_norm=0)
        Trainer(settings, model, tokenizer, trajectories).train()
        results.append(weights(model))
    # Adam divides by the root of tiny second moments, so summation-order noise shows at 1e-6.
    assert all(torch.allclose(results[0][n], results[1][n], atol=1e-5) for n in results[0])


def test_micro_batches_hold_examples_of_similar_length(
    tmp_path, model_dir, trajectories, monkeypatch
):
    import swirl_agents.train.trainer as trainer_module

    lengths, collate = [], trainer_module.collate

    def recording_collate(examples, pad_id):
        lengths.append([len(example.tokens.input_ids) for example in examples])
        return collate(examples, pad_id)

    monkeypatch.setattr(trainer_module, "collate", recording_collate)
    model, tokenizer = load_model(model_dir)
    Trainer(config(tmp_path, micro_batch_size=2, steps=2), model, tokenizer, trajectories).train()
    # Per step: 2 micro-batches of 2; the first holds the step's two shortest examples.
    steps = [lengths[i : i + 2] for i in range(0, len(lengths), 2)]
    assert len(steps) == 2
    for first, second in steps:
        assert first == sorted(first) and second == sorted(second) and max(first) <= min(second)


def test_gradient_checkpointing_gives_the_same_update(tmp_path, model_dir, trajectories):
    results = []
    for checkpointing in (False, True):
        model, tokenizer = load_model(model_dir)
        settings = config(
            tmp_path / str(checkpointing), gradient_checkpointing=checkpointing, steps=2
        )
        Trainer(settings, model, tokenizer, trajectories).train()
        assert (
            any(getattr(m, "gradient_checkpointing", False) for m in model.modules())
            is checkpointing
        )
        results.append(weights(model))
    assert all(torch.allclose(results[0][n], results[1][n], atol=1e-6) for n in results[0])


def test_lora_changes_only_the_adapters(tmp_path, model_dir, trajectories):
    model, tokenizer = load_model(model_dir)
    base = weights(model)
    trainer = Trainer(config(tmp_path, lora_r=4, steps=2), model, tokenizer, trajectories)
    trainer.train()
    named = dict(trainer.model.named_parameters())
    lora = {n: p for n, p in named.items() if "lora_" in n}
    assert lora and all(p.requires_grad for p in lora.values())
    assert any(n.endswith("lora_B.default.weight") and p.abs().sum() > 0 for n, p in lora.items())
    for name, value in base.items():
        wrapped = f"base_model.model.{name}".replace(".weight", ".base_layer.weight")
        current = named.get(wrapped, named.get(f"base_model.model.{name}"))
        assert torch.equal(current, value), name
    from peft import PeftModel

    exported = PeftModel.from_pretrained(load_model(model_dir)[0], tmp_path / "run/final")
    for name, value in exported.named_parameters():
        if "lora_" in name:
            assert torch.equal(value, lora[name]), name


def test_cosine_schedule_warms_up_then_decays(tmp_path, model_dir, trajectories):
    model, tokenizer = load_model(model_dir)
    settings = config(tmp_path, steps=6, warmup_steps=2, lr_schedule="cosine", lr=1e-3)
    Trainer(settings, model, tokenizer, trajectories).train()
    lrs = [
        json.loads(line)["lr"] for line in (tmp_path / "run/metrics.jsonl").read_text().splitlines()
    ]
    assert lrs[:3] == pytest.approx([0.0, 5e-4, 1e-3])
    assert lrs[3] == pytest.approx(1e-3 * 0.5 * (1 + torch.cos(torch.tensor(torch.pi / 4)).item()))
    assert lrs[3] > lrs[4] > lrs[5] > 0


def test_batch_sampler_covers_each_epoch_once_and_resumes_exactly():
    sampler = BatchSampler(10, 4, seed=3)
    stream = [sampler.next_batch() for _ in range(5)]
    flat = [i for batch in stream for i in batch]
    assert sorted(flat[:10]) == list(range(10)) and sorted(flat[10:20]) == list(range(10))
    assert flat[:10] != flat[10:20]
    resumed = BatchSampler(10, 4, seed=3)
    resumed.load_state_dict({"consumed": 8, "num_examples": 10})
    assert [resumed.next_batch() for _ in range(3)] == stream[2:]
    with pytest.raises(ValueError, match="examples"):
        resumed.load_state_dict({"consumed": 8, "num_examples": 11})


class LengthJudge:
    """Rewards sampled actions with an even number of characters; records every query."""

    name = "length"

    def __init__(self):
        self.queries = []

    def judge_process(self, queries):
        self.queries.extend(queries)
        return [hard_judgement(len(q.action) % 2 == 0, "length", self.name) for q in queries]


def test_online_step_samples_judges_without_tools_and_raises_rewarded_log_probs(
    model_dir, trajectories
):
    model, tokenizer = load_model(model_dir)
    states = [sub for t in trajectories[:3] for sub in decompose_trajectory(t)][:6]
    sampling = SamplingConfig(
        num_samples=4, temperature=1.0, top_p=1.0, max_new_tokens=12, stop=("</math_exp>",)
    )
    judge = LengthJudge()
    torch.manual_seed(0)
    sampled = sample_and_judge(model, tokenizer, states, judge, sampling)
    assert len(sampled.examples) == len(judge.queries) == 24
    for number, query in enumerate(judge.queries):
        state = states[number // 4]
        assert (query.task_id, query.step, query.state, query.question) == (
            state.task_id,
            state.step,
            state.state,
            state.question,
        )
        assert query.action == sampled.actions[number // 4][number % 4]
        example = sampled.examples[number]
        (start, end), ids = example.tokens.action_spans[0], example.tokens.input_ids
        assert end == len(ids)  # the state, the sampled action, nothing after it
        assert tokenizer.decode(ids[start:end], skip_special_tokens=True) == query.action
    advantages = torch.tensor([e.weights[0] for e in sampled.examples]).view(6, 4)
    assert advantages.abs().sum() > 0
    assert torch.allclose(advantages.sum(dim=1), torch.zeros(6), atol=1e-4)

    def objective():
        """Σ A_i log π(a_i|s_i): what one policy-gradient step must increase."""
        with torch.no_grad():
            batch = collate(sampled.examples, tokenizer.pad_token_id)
            logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
            return -stepwise_loss(
                logits, batch.labels, batch.action_index, batch.weights, reduction="action_sum"
            ).item()

    before = objective()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    batch = collate(sampled.examples, tokenizer.pad_token_id)
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    stepwise_loss(
        logits, batch.labels, batch.action_index, batch.weights, reduction="action_sum"
    ).backward()
    optimizer.step()
    assert objective() > before


def test_cut_action_stops_at_the_closing_tag_or_an_end_token(model_dir):
    _, tokenizer = load_model(model_dir)
    ids = tokenizer("<math_exp>3 + 4</math_exp> and more", add_special_tokens=False).input_ids
    cut = cut_action(ids, tokenizer, ["</math_exp>"], {tokenizer.eos_token_id})
    assert tokenizer.decode(cut) == "<math_exp>3 + 4</math_exp>"
    with_eos = ids[:3] + [tokenizer.eos_token_id] + ids[3:]
    assert (
        cut_action(with_eos, tokenizer, ["</math_exp>"], {tokenizer.eos_token_id}) == with_eos[:4]
    )
    assert cut_action(ids[:3], tokenizer, ["</math_exp>"], set()) == ids[:3]


def test_online_training_runs_and_logs_rewards(tmp_path, model_dir, trajectories):
    model, tokenizer = load_model(model_dir)
    settings = config(
        tmp_path, objective="swirl-online", num_samples=2, max_new_tokens=8, kl_coef=0.1, steps=2
    )
    trainer = Trainer(settings, model, tokenizer, trajectories, judge=LengthJudge())
    metrics = trainer.train()
    assert {"reward_mean", "groups_with_signal", "kl"} <= set(metrics)
    assert 0.0 <= metrics["reward_mean"] <= 1.0
    assert metrics["kl"] >= 0.0
    assert len(trainer.judge.queries) == 2 * 4 * 2


def test_online_objective_without_a_judge_is_an_error(tmp_path, model_dir, trajectories):
    model, tokenizer = load_model(model_dir)
    with pytest.raises(ValueError, match="judge"):
        Trainer(config(tmp_path, objective="swirl-online"), model, tokenizer, trajectories)
    with pytest.raises(ValueError, match="objective"):
        TrainConfig(objective="ppo")
    with pytest.raises(ValueError, match="unknown training settings"):
        TrainConfig.from_dict({"learning_rate": 1.0})


def test_cli_flags_are_the_config_fields_with_their_docstrings_as_help():
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    argv = "train --data d.jsonl --model m --out o --objective sft --steps 7 --lr 0.5 --resume"
    argv += " --batch-size 4 --stop </a> </b> --no-bf16 --loss-reduction token --device cpu"
    config = config_from_args(parser.parse_args(argv.split()))
    assert config == TrainConfig(
        data="d.jsonl", model="m", out_dir="o", objective="sft", steps=7, lr=0.5, resume=True,
        batch_size=4, stop=("</a>", "</b>"), bf16=False, loss_reduction="token", device="cpu",
    )  # fmt: skip
    assert config_from_args(parser.parse_args(["train"])) == TrainConfig()
    help_text = parser._subparsers._group_actions[0].choices["train"].format_help()
    assert "Online: actions sampled per state" in help_text
    with pytest.raises(ValueError, match="objective must be one of"):
        config_from_args(parser.parse_args("train --objective ppo".split()))

"""``swirl export`` and ``swirl import``: trajectories to a ``datasets.Dataset`` and back."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest

datasets = pytest.importorskip("datasets")

from swirl_agents.judges import ProgrammaticJudge, judge_trajectories  # noqa: E402
from swirl_agents.stages import (  # noqa: E402
    StageError,
    export_dataset,
    import_dataset,
    make_env,
    to_dataset,
)
from swirl_agents.store import load_trajectories  # noqa: E402
from swirl_agents.trajectory import Trajectory  # noqa: E402
from swirl_envs.transcript import transcript_messages  # noqa: E402
from tests.agents.training_fixtures import (  # noqa: E402
    ENV_ID,
    ENV_KWARGS,
    load_model,
    one_thread,  # noqa: F401
    write_store,
)

ROW_KINDS = ["trajectory", "step"]
UNREADABLE = {"good": None, "score": None, "raw": "MAYBE", "judge": "hf:judge"}


@pytest.fixture(scope="module")
def mixed(trajectories) -> list[Trajectory]:
    """Every judgement case: process only, process and outcome, an unreadable verdict, none."""
    judge = ProgrammaticJudge.from_env(make_env(ENV_ID, ENV_KWARGS).unwrapped)
    both = [j.to_trajectory() for j in judge_trajectories(trajectories[:4], outcome_judge=judge)]
    first = trajectories[4]
    process = [UNREADABLE, *first.meta["judgements"]["process"][1:]]
    unreadable = dataclasses.replace(
        first, meta={**first.meta, "judgements": {"process": process, "outcome": None}}
    )
    plain = trajectories[5]
    unjudged = dataclasses.replace(
        plain, meta={k: v for k, v in plain.meta.items() if k != "judgements"}
    )
    return [*both, unreadable, unjudged, *trajectories[6:]]


def records(trajectories) -> list[dict]:
    return [t.to_dict() for t in trajectories]


# ---- the round trip -------------------------------------------------------------------


@pytest.mark.parametrize("rows", ROW_KINDS)
def test_export_then_import_gives_back_the_exact_records(tmp_path, mixed, rows):
    source = write_store(tmp_path / "judged.jsonl", mixed)
    summary = export_dataset(source, tmp_path / "ds", rows=rows)
    steps = sum(len(t.steps) for t in mixed)
    assert summary["trajectories"] == len(mixed)
    assert summary["rows"] == (len(mixed) if rows == "trajectory" else steps)
    assert not (tmp_path / "ds.tmp").exists()
    assert records(import_dataset(tmp_path / "ds")) == records(load_trajectories(source))


def test_step_rows_regroup_by_episode_in_any_order(mixed):
    shuffled = to_dataset(mixed, rows="step").shuffle(seed=0)
    back = sorted(import_dataset(shuffled), key=lambda t: t.key)
    assert records(back) == records(sorted(mixed, key=lambda t: t.key))


@pytest.mark.parametrize("rows", ROW_KINDS)
def test_import_needs_only_the_record_columns(mixed, rows):
    dataset = to_dataset(mixed, rows=rows)
    views = ["messages", "process_scores"] if rows == "trajectory" else ["prompt", "completion"]
    assert records(import_dataset(dataset.remove_columns(views))) == records(mixed)
    assert import_dataset(to_dataset([], rows=rows)) == []


def test_a_trajectory_without_steps_is_left_out_of_step_rows_and_counted(tmp_path, mixed):
    empty = dataclasses.replace(mixed[0], task_id="no-steps", steps=[], meta={})
    summary = export_dataset([empty, *mixed], tmp_path / "ds", rows="step")
    assert summary["skipped"] == 1 and "1 without steps" in summary["summary"]
    assert records(import_dataset(tmp_path / "ds")) == records(mixed)
    export_dataset([empty], tmp_path / "whole")
    assert records(import_dataset(tmp_path / "whole")) == records([empty])


# ---- the columns ----------------------------------------------------------------------


def test_trajectory_rows_hold_the_chat_transcript_and_the_judgements(mixed):
    from swirl_agents.train.data import step_rewards

    dataset = to_dataset(mixed, rows="trajectory")
    for row, trajectory in zip(dataset, mixed, strict=True):
        pairs = [(step.action, step.feedback) for step in trajectory.steps]
        assert row["messages"] == transcript_messages(trajectory.prompt, trajectory.question, pairs)
        judgements = trajectory.meta.get("judgements")
        if judgements is None:
            assert row["process_scores"] is row["step_weights"] is row["outcome_verdict"] is None
            continue
        assert row["process_scores"] == [j["score"] for j in judgements["process"]]
        assert row["process_verdicts"] == [j["good"] for j in judgements["process"]]
        assert row["step_weights"] == step_rewards(trajectory)
        outcome = judgements["outcome"] or {"good": None, "score": None}
        assert (row["outcome_verdict"], row["outcome_score"]) == (outcome["good"], outcome["score"])
    unreadable = dataset[4]
    assert unreadable["process_scores"][0] is None and unreadable["step_weights"][0] == 0.0
    assert dataset[0]["outcome_verdict"] is not None


def test_step_rows_are_trls_prompt_completion_with_that_steps_judgement(mixed):
    dataset = to_dataset(mixed, rows="step")
    rows = iter(dataset)
    for trajectory in mixed:
        whole = transcript_messages(
            trajectory.prompt,
            trajectory.question,
            [(s.action, s.feedback) for s in trajectory.steps],
        )
        judgements = trajectory.meta.get("judgements") or {"process": None, "outcome": None}
        outcome = judgements["outcome"] or {"good": None, "score": None}
        for k, step in enumerate(trajectory.steps):
            row = next(rows)
            assert (row["task_id"], row["sample"], row["step"]) == (*trajectory.key, k)
            assert row["num_steps"] == len(trajectory.steps)
            assert row["completion"] == [{"role": "assistant", "content": step.action}]
            # s_k then a_k is a prefix of the whole conversation, as in the env's messages.
            assert row["prompt"] + row["completion"] == whole[: len(row["prompt"]) + 1]
            assert row["action"] == step.action and row["feedback"] == step.feedback
            process = judgements["process"]
            expected = (
                (None, None) if process is None else (process[k]["score"], process[k]["good"])
            )
            assert (row["process_score"], row["process_verdict"]) == expected
            weight = None if process is None else (expected[0] or 0.0)
            assert row["step_weight"] == weight
            assert (row["outcome_verdict"], row["outcome_score"]) == (
                outcome["good"],
                outcome["score"],
            )
    assert next(rows, None) is None


def test_the_meta_column_is_json_text_and_the_trl_columns_lead(mixed):
    dataset = to_dataset(mixed, rows="step")
    assert dataset.column_names[:2] == ["prompt", "completion"]
    assert json.loads(dataset[0]["meta_json"]) == mixed[0].meta
    assert "prompt" not in to_dataset(mixed).column_names  # TRL would read it as prompt-completion


# ---- errors ---------------------------------------------------------------------------


def test_import_names_what_is_wrong(tmp_path, mixed):
    with pytest.raises(StageError, match="no such dataset folder"):
        import_dataset(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(StageError, match="empty: not a saved dataset"):
        import_dataset(tmp_path / "empty")
    datasets.Dataset.from_list([{"text": "hi"}]).save_to_disk(tmp_path / "other")
    with pytest.raises(StageError, match="other: not an exported trajectory dataset"):
        import_dataset(tmp_path / "other")
    missing = to_dataset(mixed, rows="step").filter(lambda row: row["step"] != 1)
    with pytest.raises(StageError, match=r"episode \('synth_math/train/0/0', 0\): needs each"):
        import_dataset(missing)
    meta = to_dataset(mixed[:1]).map(lambda row: {"meta_json": "{torn"})
    with pytest.raises(StageError, match="row 0: not a trajectory"):
        import_dataset(meta)


def test_export_refuses_what_it_cannot_round_trip(tmp_path, mixed):
    with pytest.raises(StageError, match="nothing.jsonl: no such trajectory file"):
        export_dataset(tmp_path / "nothing.jsonl", tmp_path / "ds")
    with pytest.raises(StageError, match="appears twice"):
        to_dataset([mixed[0], mixed[0]], rows="step")
    with pytest.raises(StageError, match="rows must be one of"):
        to_dataset(mixed, rows="sub-trajectory")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(StageError, match="not a saved dataset; not replacing it"):
        export_dataset(mixed, tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_push_to_hub_calls_datasets_push_to_hub(monkeypatch, mixed):
    pushed = []

    def push(self, repo_id, **kwargs):
        pushed.append((repo_id, len(self)))

    monkeypatch.setattr(datasets.Dataset, "push_to_hub", push)
    summary = export_dataset(mixed, None, rows="step", push_to_hub="me/swirl-math")
    assert pushed == [("me/swirl-math", summary["rows"])]
    assert summary["pushed_to"] == "me/swirl-math" and "hub:me/swirl-math" in summary["summary"]

    def offline(self, repo_id, **kwargs):
        raise ConnectionError("offline")

    monkeypatch.setattr(datasets.Dataset, "push_to_hub", offline)
    with pytest.raises(StageError, match="push to me/swirl-math failed: offline"):
        export_dataset(mixed, None, push_to_hub="me/swirl-math")


# ---- the CLI --------------------------------------------------------------------------


@pytest.mark.parametrize("rows", ROW_KINDS)
def test_swirl_export_then_import_round_trips_a_file(tmp_path, swirl, mixed, rows):
    source = write_store(tmp_path / "judged.jsonl", mixed)
    run = swirl("export", "--in", source, "--out", tmp_path / "ds", "--rows", rows)
    assert run.code == 0, run.err
    assert f"exported {len(mixed)} trajectories" in run.out
    run = swirl("import", "--in", tmp_path / "ds", "--out", tmp_path / "back.jsonl")
    assert run.code == 0, run.err
    assert f"imported {len(mixed)} trajectories" in run.out
    assert records(load_trajectories(tmp_path / "back.jsonl")) == records(mixed)


def test_swirl_export_and_import_errors_are_one_line(tmp_path, swirl):
    run = swirl("export", "--in", tmp_path / "missing.jsonl", "--out", tmp_path / "ds")
    assert run.code == 2 and run.err.count("\n") == 1
    assert run.err.startswith("swirl export: ") and "missing.jsonl" in run.err
    assert swirl("export", "--in", tmp_path / "missing.jsonl").err.endswith(
        "give --out, --push-to-hub or both\n"
    )
    (tmp_path / "bad.jsonl").write_text("{not json\n")
    run = swirl("export", "--in", tmp_path / "bad.jsonl", "--out", tmp_path / "ds")
    assert run.code == 2 and "bad.jsonl:1" in run.err
    run = swirl("import", "--in", tmp_path / "nods", "--out", tmp_path / "x.jsonl")
    assert (
        run.code == 2 and run.err == f"swirl import: {tmp_path / 'nods'}: no such dataset folder\n"
    )
    assert not (tmp_path / "x.jsonl").exists()


# ---- training on an exported set ------------------------------------------------------


# transformers 5 warns about the name of a setting SFTConfig passes itself
@pytest.mark.filterwarnings("ignore:`gradient_checkpointing` is deprecated:FutureWarning")
def test_trl_sft_trainer_trains_on_exported_step_rows(tmp_path, mixed, model_dir):
    """Step rows are TRL's conversational prompt-completion: the loss covers a_k only."""
    pytest.importorskip("trl")
    from trl import SFTConfig, SFTTrainer

    export_dataset(mixed, tmp_path / "ds", rows="step")
    model, tokenizer = load_model(model_dir)
    settings = SFTConfig(
        output_dir=str(tmp_path / "trl"), max_steps=2, per_device_train_batch_size=4,
        learning_rate=1e-3, use_cpu=True, report_to=[], save_strategy="no", logging_steps=1,
        gradient_checkpointing=False,
    )  # fmt: skip
    dataset = datasets.load_from_disk(tmp_path / "ds")
    trainer = SFTTrainer(
        model=model, args=settings, train_dataset=dataset, processing_class=tokenizer
    )
    example = trainer.train_dataset[0]
    trained = [
        i for i, label in zip(example["input_ids"], example["labels"], strict=True) if label != -100
    ]
    # Trained: the completion only, a_k and the tiny chat template's end of turn.
    assert tokenizer.decode(trained) == dataset[0]["action"] + "<|im_end|>\n"
    result = trainer.train()
    assert trainer.state.global_step == 2 and math.isfinite(result.training_loss)


@pytest.mark.parametrize("rows", ROW_KINDS)
def test_our_trainer_gives_the_same_loss_on_a_reimported_set(tmp_path, mixed, model_dir, rows):
    from swirl_agents.train import TrainConfig, Trainer

    judged = [t for t in mixed if "judgements" in t.meta]
    source = write_store(tmp_path / "judged.jsonl", judged)
    export_dataset(source, tmp_path / "ds", rows=rows)
    losses = []
    for data in (list(load_trajectories(source)), import_dataset(tmp_path / "ds")):
        model, tokenizer = load_model(model_dir)
        config = TrainConfig(
            objective="swirl-offline", steps=1, batch_size=4, micro_batch_size=4, lr=1e-2,
            seed=0, out_dir=str(tmp_path / "run"), progress=False,
        )  # fmt: skip
        losses.append(Trainer(config, model, tokenizer, data).train_step()["loss"])
    assert losses[0] == losses[1] and math.isfinite(losses[0]) and losses[0] > 0

"""benchmarks/ablations.py: fixed-size subsampling, and the whole script on tiny sizes."""

from __future__ import annotations

import json
import math

import pytest

from swirl_agents.config import QUICK_OVERRIDES, load_config
from swirl_agents.stages import generate, run_stage
from swirl_agents.stages.recipe import train_env
from swirl_agents.store import load_trajectories
from tests.agents.test_benchmarks import load_script

TINY = [
    "families.0.train_tasks=40", "families.1.train_tasks=40",
    "families.0.test_tasks=12", "families.1.test_tasks=12",
    "warmup.steps=4", "train.steps=4", "train.save_every=2", "generate.batch_size=40",
]  # fmt: skip


def test_subsample_draws_a_seeded_subset_in_input_order(monkeypatch):
    subsample = load_script("ablations", monkeypatch).subsample
    items = list(range(100))
    drawn = subsample(items, 30, seed=3)
    assert len(drawn) == len(set(drawn)) == 30
    assert drawn == sorted(drawn) and set(drawn) <= set(items)
    assert subsample(items, 30, seed=3) == drawn
    assert subsample(items, 30, seed=4) != drawn
    assert subsample(items, 100, seed=3) == items and subsample(items, 0, seed=3) == []
    with pytest.raises(ValueError, match="cannot draw 101 of 100"):
        subsample(items, 101, seed=3)


def _expert_samples(folder, config, family, seed=0):
    """Stage 1 drawn from the misconception expert instead of the base model.

    At test sizes the base model learns nothing, so its samples would leave every filter
    but ``none`` empty; the expert's samples mix good and bad steps and right and wrong
    answers, so every filter keeps some and every stage after stage 1 really runs.
    """
    from swirl_agents.demo.run import expert_policy

    env = train_env(family, seed)
    run_stage(
        folder / "samples",
        "expert samples",
        lambda: generate(
            env, expert_policy(family, env, config), folder / "samples" / "trajectories.jsonl",
            samples=config.generate.samples, seed=seed, batch_size=64,
            num_tasks=family.train_tasks,
        ),
        log=lambda _: None,
    )  # fmt: skip


@pytest.mark.slow
def test_quick_run_trains_every_variant_on_equal_data_and_a_rerun_resumes(tmp_path, monkeypatch):
    module = load_script("ablations", monkeypatch)
    config = load_config(None, [*QUICK_OVERRIDES, *TINY])
    out, demo = tmp_path / "abl", tmp_path / "demo"
    for family in config.families:
        _expert_samples(demo / "seed-0" / family.name, config, family)
    _expert_samples(out / "seed-0" / "transfer-hop-math", config, config.families[1])
    argv = [
        "--quick",
        "--out",
        str(out),
        "--demo-run",
        str(demo),
        "--json",
        str(tmp_path / "a.json"),
    ]
    argv += [item for setting in TINY for item in ("--set", setting)]

    lines: list[str] = []
    results = module.run(argv, log=lines.append)
    assert json.loads((tmp_path / "a.json").read_text()) == json.loads(json.dumps(results))
    assert (tmp_path / "a.png").stat().st_size > 0
    per_seed = results["seeds"]["0"]
    for family in ("math", "hop"):
        ablation = per_seed[family]
        size = ablation["data_size"]
        assert "skipped" not in ablation
        assert size == min(ablation["kept"].values()) > 0
        assert ablation["kept"]["none"] == ablation["judged"] == 40 * config.generate.samples
        assert ablation["kept"]["process"] < ablation["kept"]["none"]
        for mode in ("none", "process", "outcome", "process+outcome"):
            data = out / "seed-0" / family / f"n{size}" / "data" / f"{mode}.jsonl"
            assert len(list(load_trajectories(data))) == size
        assert set(ablation["eval"]) == {"base", "demo-swirl", *module.VARIANTS}
        for variant in module.VARIANTS:
            assert (out / "seed-0" / family / f"n{size}" / variant / "final").is_dir()
        for decodings in ablation["eval"].values():
            assert set(decodings) == {"0", "1"}
            for report in decodings.values():
                assert 0 <= report["accuracy"] <= 1 and report["episodes"] == 12
    transfer = per_seed["transfer"]
    assert transfer["kept"] > 0 and (out / "seed-0" / "transfer-hop-math" / "swirl-hop").is_dir()
    for family in ("math", "hop"):
        for model in ("base", "swirl-hop"):
            for report in transfer["eval"][family][model].values():
                assert 0 <= report["accuracy"] <= 1
    for temperature, gain in transfer["relative_gain_percent"].items():
        base = transfer["eval"]["math"]["base"][temperature]["accuracy"]
        assert gain is None if base == 0 else math.isfinite(gain)
    table = results["table"]
    for label in module.LABELS.values():
        assert label in table
    assert "below no filter (except MuSiQue)" in table and "+16.9%" in table

    rerun: list[str] = []
    again = module.run(argv, log=rerun.append)
    stage_lines = [line for line in rerun if line.startswith("[")]
    assert len(stage_lines) >= 40
    assert all("already done" in line for line in stage_lines), stage_lines
    assert again["table"] == table

    with pytest.raises(SystemExit, match="more than a filter kept"):
        module.run([*argv, "--data-size", "100000"], log=lambda _: None)
    with pytest.raises(SystemExit, match="made with other settings"):
        module.run([*argv, "--set", "train.lr=0.1"], log=lambda _: None)

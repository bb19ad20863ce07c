"""The run config: strict YAML loading, overrides, and the shipped configs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from swirl_agents.config import ConfigError, RunConfig, load_config, save_config

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, data) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_demo_yaml_spells_out_the_embedded_defaults():
    assert load_config(ROOT / "swirl_agents/configs/demo.yaml") == RunConfig()


@pytest.mark.parametrize("name", ["gsm8k_gemma.yaml", "hotpotqa_qwen.yaml"])
def test_paper_configs_load_and_start_from_a_pretrained_model(name):
    config = load_config(ROOT / "configs" / name)
    assert config.model.path and config.judge.filter == "process"
    assert config.train.controls == ["sft"]


def test_unknown_key_names_its_dotted_path(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key train\.lrr"):
        load_config(write(tmp_path, {"train": {"lrr": 1e-3}}))


def test_unknown_key_inside_a_list_item(tmp_path):
    families = [{"name": "m", "env_id": "swirl/SynthMath-v0", "colour": "red"}]
    with pytest.raises(ConfigError, match=r"families\[0\]\.colour"):
        load_config(write(tmp_path, {"families": families}))


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"train": {"steps": "many"}}, "train.steps"),
        ({"seeds": 3}, "seeds"),
        ({"eval": {"temperatures": [0, "hot"]}}, r"eval\.temperatures\[1\]"),
        ({"threads": True}, "threads"),
        ({"families": [{"name": "m", "env_id": "x", "samples": "8"}]}, r"families\[0\]\.samples"),
    ],
)
def test_wrong_type_names_the_key(tmp_path, data, key):
    with pytest.raises(ConfigError, match=key):
        load_config(write(tmp_path, data))


def test_optional_family_settings_take_none_or_their_type():
    config = load_config(None, ["families.1.misconception_rate=null", "families.1.samples=6"])
    assert config.families[1].misconception_rate is None and config.families[1].samples == 6
    with pytest.raises(ConfigError, match=r"families\[1\]\.misconception_rate"):
        load_config(None, ["families.1.misconception_rate=1.5"])


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"judge": {"filter": "best"}}, r"judge\.filter"),
        ({"model": {"prompt_format": "xml"}}, r"model\.prompt_format"),
    ],
)
def test_invalid_choice_names_the_key(tmp_path, data, key):
    with pytest.raises(ConfigError, match=key):
        load_config(write(tmp_path, data))


def test_not_a_mapping_is_an_error(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(path)


def test_overrides_reach_nested_and_list_keys_and_ints_become_floats():
    config = load_config(None, ["train.lr=1", "families.1.train_tasks=50", "seeds=[0, 1, 2]"])
    assert config.train.settings["lr"] == 1.0 and isinstance(config.train.settings["lr"], float)
    assert config.families[1].train_tasks == 50
    assert config.seeds == [0, 1, 2]


def test_yaml_sections_merge_with_defaults(tmp_path):
    config = load_config(write(tmp_path, {"train": {"steps": 7}}))
    assert config.train.settings["steps"] == 7
    assert config.train.settings["lr"] == RunConfig().train.settings["lr"]


@pytest.mark.parametrize("override", ["train.lr", "=3", "families.9.name=x", "nosuch.key=1"])
def test_bad_overrides_are_clear_errors(override):
    with pytest.raises(ConfigError):
        load_config(None, [override])


def test_saved_config_loads_back_identical(tmp_path):
    config = load_config(None, ["train.steps=3", "out_dir=somewhere"])
    assert load_config(save_config(config, tmp_path / "resolved.yaml")) == config


def test_training_sections_are_checked_by_the_trainers_own_config(tmp_path):
    config = load_config(None, ["train.kl_coef=0.05", "warmup.lr_schedule=constant"])
    assert config.train.settings["kl_coef"] == 0.05 and config.train.objective == "swirl-offline"
    assert config.warmup.settings["lr_schedule"] == "constant"
    assert load_config(save_config(config, tmp_path / "c.yaml")) == config
    with pytest.raises(ConfigError, match=r"unknown key train\.lrr; known keys here: .*kl_coef"):
        load_config(None, ["train.lrr=1"])
    with pytest.raises(ConfigError, match="steps must be at least 1"):
        load_config(None, ["warmup.steps=0"])
    with pytest.raises(ConfigError, match="lr_schedule must be one of"):
        load_config(None, ["train.lr_schedule=wavy"])
    with pytest.raises(ConfigError, match=r"train\.model: set by the run"):
        load_config(None, ["train.model=x"])
    with pytest.raises(ConfigError, match=r"train\.stop\[0\]: expected str"):
        load_config(None, ["train.stop=[1]"])

"""The run configuration: one YAML file, validated into dataclasses, drives a whole pipeline run.

A config names the model, the task families, and the settings of every stage
(warm-up, generation, judging and filtering, training, evaluation). Loading is
strict, because a typo must not silently fall back to a default::

    config = load_config("configs/gsm8k_gemma.yaml", overrides=["train.lr=1e-6"])

- an unknown key is an error naming its dotted path (``train.lrr``) and the known keys;
- a value of the wrong type is an error naming the key, the expected and the given type;
- ``overrides`` (``KEY=VALUE``, the value read as YAML) change any key, nested ones included.

``save_config`` writes the resolved config next to the outputs, so a run records
exactly what produced it. The defaults are the CPU demo's (``swirl_agents/configs/demo.yaml``
spells the same values out).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from swirl_agents.encoding import PROMPT_FORMATS


class ConfigError(ValueError):
    """A config key is unknown, or its value has the wrong type or is out of range."""


@dataclass
class ModelConfig:
    """The policy model.

    Attributes:
        path: A model to start from (local path or hub name). Empty: build the tiny
            model and make it a base model by the misconception warm-up.
        vocab_size: Tiny model: tokenizer vocabulary.
        hidden_size: Tiny model: width.
        num_layers: Tiny model: transformer blocks.
        num_heads: Tiny model: attention heads.
        intermediate_size: Tiny model: MLP width.
        prompt_format: How every stage lays out the model's input: ``text`` (the env's
            transcript), ``chat`` (the chat template) or ``auto`` (chat when the
            tokenizer has a template). The tiny model uses ``text``: the chat markers
            make its transcripts about 50% longer (slower at every stage), and after
            the same short warm-up its greedy accuracy on a validation slice of the
            train split was lower (.01 against .05; see docs/demo.md).
    """

    path: str = ""
    vocab_size: int = 800
    hidden_size: int = 128
    num_layers: int = 2
    num_heads: int = 4
    intermediate_size: int = 384
    prompt_format: str = "text"


@dataclass
class FamilyConfig:
    """One task family: its env, its sizes and (for the demo) its misconceptions.

    Attributes:
        name: Short label used in paths and tables (``math``, ``hop``).
        env_id: Registered gymnasium id.
        env_kwargs: Settings passed to the env (the split and size are set per stage).
        train_split: The env's training split.
        test_split: The env's held-out split (``test``; ``dev`` for HotPotQA).
        train_tasks: Training questions (SWiRL samples ``generate.samples`` per question);
            generated envs make this many, data envs use their first this many.
        test_tasks: Held-out questions evaluated.
        confusions: The warm-up's systematic misconceptions: for SynthMath a phrasing key
            mapped to the operator it is wrongly read as, for SynthHop a relation mapped
            to the relation it is confused with. Test problems that use a key are the
            "misconception" split of the evaluation.
        misconception_rate: This family's rate of the confusions in the warm-up data;
            unset, ``warmup.misconception_rate``.
        samples: This family's stage-1 samples per question; unset, ``generate.samples``.
    """

    name: str = ""
    env_id: str = ""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    train_split: str = "train"
    test_split: str = "test"
    train_tasks: int = 2000
    test_tasks: int = 300
    confusions: dict[str, str] = field(default_factory=dict)
    misconception_rate: float | None = None
    samples: int | None = None


@dataclass
class WarmupConfig:
    """Supervised warm-up that turns the random-init tiny model into a weak base model.

    Every key but the two below is a ``TrainConfig`` field (``swirl train --help``),
    validated by ``TrainConfig`` itself. The defaults: 400 steps at lr 2e-3, 64
    trajectories a step (with 16 the tiny model did not learn to copy operands from
    the question: greedy accuracy .05 on a validation slice of the train split; with
    64 it reached .94 on the problems without a misconception, see docs/demo.md), 16
    a forward pass (length-sorted, so less padding: about twice as fast as 64 on one
    core), and a linear warm-up over the first 5% of steps.

    Attributes:
        misconception_rate: Probability that a step covered by a confusion is done the wrong way.
        noise: Probability that any other step is corrupted (uniform noise).
        settings: The warm-up's ``TrainConfig`` fields (the objective is always ``sft``).
    """

    misconception_rate: float = 0.7
    noise: float = 0.1
    settings: dict[str, Any] = field(
        default_factory=lambda: {
            "steps": 400,
            "lr": 2e-3,
            "batch_size": 64,
            "micro_batch_size": 16,
        },
        metadata={"trainer_settings": True},
    )


@dataclass
class GenerateConfig:
    """Stage 1: sampling k trajectories per training question with the base model.

    Attributes:
        samples: Trajectories per question (SWiRL's k).
        temperature: Sampling temperature.
        batch_size: Live episodes per batched generate call.
        max_new_tokens: Longest action in tokens.
    """

    samples: int = 4
    temperature: float = 1.0
    batch_size: int = 64
    max_new_tokens: int = 48


@dataclass
class JudgeConfig:
    """Judging and filtering.

    Attributes:
        process: Process judge: ``programmatic`` or ``hf:PATH``.
        outcome: Outcome judge: ``programmatic`` or ``hf:PATH``.
        filter: ``none``, ``process``, ``outcome`` or ``process+outcome``.
    """

    process: str = "programmatic"
    outcome: str = "programmatic"
    filter: str = "process"


@dataclass
class TrainStageConfig:
    """Stage 2 (SWiRL) and the controls, all on the same budget.

    Every key but ``controls`` is a ``TrainConfig`` field (``swirl train --help``:
    ``objective``, ``steps``, ``lr``, ``kl_coef``, ...), validated by ``TrainConfig``
    itself; the run sets ``model``, ``data``, ``out_dir``, ``seed``, ``device`` and
    ``prompt_format`` (``model.prompt_format``).

    Attributes:
        controls: Which controls to train: ``sft`` (SFT on the unfiltered samples) and
            ``compute-matched`` (the same steps of SFT on more warm-up data).
        settings: SWiRL's ``TrainConfig`` fields; the controls use them with ``sft``.
    """

    controls: list[str] = field(default_factory=lambda: ["sft", "compute-matched"])
    settings: dict[str, Any] = field(
        default_factory=lambda: {
            "objective": "swirl-offline",
            "steps": 150,
            "lr": 5e-4,
            "batch_size": 16,
            "micro_batch_size": 16,
            "save_every": 50,
        },
        metadata={"trainer_settings": True},
    )

    @property
    def objective(self) -> str:
        """SWiRL's objective (``swirl-offline`` unless the settings say otherwise)."""
        return self.settings.get("objective", "swirl-offline")


RUN_SET = ("model", "data", "out_dir", "resume", "seed", "device", "prompt_format")
"""``TrainConfig`` fields every run sets itself, per stage; a config may not set them."""


@dataclass
class EvalConfig:
    """Evaluation on the test split.

    Attributes:
        temperatures: Decodings evaluated (0 is greedy).
        batch_size: Live episodes per batched generate call.
        max_new_tokens: Longest action in tokens.
    """

    temperatures: list[float] = field(default_factory=lambda: [0.0, 1.0])
    batch_size: int = 100
    max_new_tokens: int = 48


def _demo_families() -> list[FamilyConfig]:
    return [
        FamilyConfig(
            name="math",
            env_id="swirl/SynthMath-v0",
            env_kwargs={
                "min_ops": 2,
                "max_ops": 4,
                "max_steps": 6,
                "system_prompt": "Compute with <math_exp>, answer with <answer>.",
            },
            confusions={"give_away": "+", "share_equally": "*"},
        ),
        FamilyConfig(
            name="hop",
            env_id="swirl/SynthHop-v0",
            env_kwargs={
                "min_hops": 2,
                "max_hops": 2,
                "max_steps": 4,
                "system_prompt": "Search with <search_query>, answer with <answer>.",
                # Questions never ask for lives_in or ceo (passages still state them), so
                # the confusions are misreadings of the two relations asked about.
                "relations": [
                    "born_in",
                    "works_for",
                    "founded_by",
                    "headquartered_in",
                    "country",
                    "mayor",
                    "capital",
                ],
                "world_scale": 2,
                "holdout": "question",
            },
            confusions={"born_in": "lives_in", "founded_by": "ceo"},
            misconception_rate=0.6,
            samples=8,
        ),
    ]


@dataclass
class RunConfig:
    """A whole pipeline run.

    Attributes:
        out_dir: Where every stage writes (one folder per seed and family).
        seeds: Seeds run; each gets its own model, data and results.
        threads: Torch CPU threads per worker (1 is fastest for the tiny model).
        workers: Families run at once, each in its own process (one per CPU core).
        device: ``cpu``, ``cuda``, or empty for the local GPU when there is one.
        model: The policy model.
        families: Task families run.
        warmup: The base model's warm-up (tiny model only).
        generate: Stage 1.
        judge: Judging and filtering.
        train: Stage 2 and its controls.
        eval: Evaluation.
    """

    out_dir: str = "runs/demo"
    seeds: list[int] = field(default_factory=lambda: [0])
    threads: int = 1
    workers: int = 2
    device: str = ""
    model: ModelConfig = field(default_factory=ModelConfig)
    families: list[FamilyConfig] = field(default_factory=_demo_families)
    warmup: WarmupConfig = field(default_factory=WarmupConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    train: TrainStageConfig = field(default_factory=TrainStageConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, Any]:
        """A YAML-ready dict of every key (training settings inline in their section)."""
        return _flat(self)


_FILTERS = ("none", "process", "outcome", "process+outcome")
_CONTROLS = ("sft", "compute-matched")
_OBJECTIVES = ("swirl-offline", "swirl-online")


def validate(config: RunConfig) -> RunConfig:
    """Check ranges and choices that types alone do not express.

    Raises:
        ConfigError: Naming the offending key.
    """
    checks = [
        ("judge.filter", config.judge.filter in _FILTERS, f"one of {_FILTERS}"),
        (
            "model.prompt_format",
            config.model.prompt_format in PROMPT_FORMATS,
            f"one of {PROMPT_FORMATS}",
        ),
        ("train.objective", config.train.objective in _OBJECTIVES, f"one of {_OBJECTIVES}"),
        (
            "train.controls",
            set(config.train.controls) <= set(_CONTROLS),
            f"a subset of {_CONTROLS}",
        ),
        ("seeds", bool(config.seeds), "at least one seed"),
        ("families", bool(config.families), "at least one family"),
        ("threads", config.threads >= 1, ">= 1"),
        ("workers", config.workers >= 1, ">= 1"),
        ("warmup.misconception_rate", 0 <= config.warmup.misconception_rate <= 1, "in [0, 1]"),
        ("warmup.noise", 0 <= config.warmup.noise <= 1, "in [0, 1]"),
        ("generate.samples", config.generate.samples >= 1, ">= 1"),
        ("eval.temperatures", all(t >= 0 for t in config.eval.temperatures), "all >= 0"),
    ]
    for number, family in enumerate(config.families):
        where = f"families[{number}]"
        checks += [
            (
                f"{where}.name",
                bool(family.name) and "/" not in family.name,
                "a non-empty name without '/'",
            ),
            (f"{where}.env_id", bool(family.env_id), "a registered env id"),
            (f"{where}.train_tasks", family.train_tasks >= 1, ">= 1"),
            (f"{where}.test_tasks", family.test_tasks >= 1, ">= 1"),
            (
                f"{where}.misconception_rate",
                family.misconception_rate is None or 0 <= family.misconception_rate <= 1,
                "in [0, 1] or unset",
            ),
            (f"{where}.samples", family.samples is None or family.samples >= 1, ">= 1 or unset"),
        ]
    names = [family.name for family in config.families]
    checks.append(("families", len(set(names)) == len(names), "distinct family names"))
    for key, ok, expected in checks:
        if not ok:
            raise ConfigError(f"{key}: must be {expected}, got {_lookup(config, key)!r}")
    return config


def from_dict(data: dict[str, Any]) -> RunConfig:
    """Build and validate a ``RunConfig`` from plain data (a parsed YAML mapping).

    Raises:
        ConfigError: Unknown key, wrong type, or invalid value; the message names the key.
    """
    return validate(_build(RunConfig, data, ""))


def load_config(path: str | os.PathLike | None = None, overrides: list[str] = ()) -> RunConfig:
    """Read a YAML config (the demo defaults when ``path`` is None) and apply overrides.

    Raises:
        ConfigError: The file is not a YAML mapping, or a key or value is invalid.
    """
    data: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except yaml.YAMLError as error:
            raise ConfigError(f"{path}: not valid YAML: {error}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: must be a mapping of keys, got {type(loaded).__name__}")
        data = loaded or {}
    data = _merge(RunConfig().to_dict(), data)
    for override in overrides:
        key, sep, raw = override.partition("=")
        if not sep or not key.strip():
            raise ConfigError(
                f"override {override!r} must look like KEY=VALUE (e.g. train.lr=1e-4)"
            )
        _set(data, key.strip(), yaml.safe_load(raw))
    try:
        return from_dict(data)
    except ConfigError as error:
        raise ConfigError(f"{path or 'config'}: {error}") from None


QUICK_OVERRIDES = (
    "families.0.train_tasks=200", "families.1.train_tasks=200",
    "families.0.test_tasks=40", "families.1.test_tasks=40",
    "warmup.steps=20", "train.steps=10", "train.save_every=5",
    "model.hidden_size=32", "model.intermediate_size=64", "model.vocab_size=400",
    "generate.max_new_tokens=24", "eval.max_new_tokens=24",
)  # fmt: skip
"""``--quick``: a run of a few minutes that exercises every stage (it does not learn much)."""


def add_run_config_flags(parser: argparse.ArgumentParser) -> None:
    """Flags shared by the config-driven commands; each one overrides a config key."""
    parser.add_argument("--config", help="YAML run config (default: the embedded demo config)")
    parser.add_argument("--out", help="output folder (key out_dir)")
    seeds = parser.add_mutually_exclusive_group()
    seeds.add_argument(
        "--seeds", type=int, metavar="N", help="run N seeds: 0, 1, ..., N-1 (key seeds)"
    )
    seeds.add_argument("--seed", type=int, nargs="+", metavar="S", help="run these seeds")
    parser.add_argument("--threads", type=int, help="torch CPU threads (key threads)")
    parser.add_argument("--device", help="cpu or cuda (key device)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="override any config key, e.g. --set train.lr=1e-4 --set families.0.train_tasks=500",
    )  # fmt: skip


def run_config_overrides(args: argparse.Namespace) -> list[str]:
    """The ``KEY=VALUE`` overrides the named flags and ``--set`` describe, flags first."""
    overrides = list(QUICK_OVERRIDES) if getattr(args, "quick", False) else []
    if args.seeds is not None:
        if args.seeds < 1:
            raise ValueError(f"--seeds takes a number of seeds (1 or more), got {args.seeds}")
        overrides.append(f"seeds={list(range(args.seeds))}")
    if args.seed is not None:
        overrides.append(f"seeds={args.seed}")
    for flag, key in (("out", "out_dir"), ("threads", "threads"), ("device", "device")):
        value = getattr(args, flag)
        if value is not None:
            overrides.append(f"{key}={value}")
    return overrides + list(args.set)


def save_config(config: RunConfig, path: str | os.PathLike) -> Path:
    """Write the resolved config as YAML (atomically), so the outputs record what produced them."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False), encoding="utf-8")
    os.replace(temporary, path)
    return path


# ---- strict construction -------------------------------------------------------------


def _flat(config: Any) -> Any:
    """``config`` as plain data, each section's trainer settings inline beside its own keys."""
    if isinstance(config, list):
        return [_flat(item) for item in config]
    if not dataclasses.is_dataclass(config):
        return config
    data: dict[str, Any] = {}
    for item in dataclasses.fields(config):
        value = getattr(config, item.name)
        if item.metadata.get("trainer_settings"):
            data.update(value)
        else:
            data[item.name] = _flat(value) if not isinstance(value, dict) else dict(value)
    return data


def _build(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    trainer = [f.name for f in dataclasses.fields(cls) if f.metadata.get("trainer_settings")]
    if trainer:  # the section's own keys, and the rest as its TrainConfig settings
        own = sorted({f.name for f in dataclasses.fields(cls)} - set(trainer))
        settings = _trainer_settings(
            {key: value for key, value in data.items() if key not in own}, where, own
        )
        data = {key: value for key, value in data.items() if key in own}
        hints.pop(trainer[0])
        values = {
            key: _convert(hints[key], value, _join(where, key)) for key, value in data.items()
        }
        return cls(**values, **{trainer[0]: settings})
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(known))
    if unknown:
        names = ", ".join(_join(where, key) for key in unknown)
        raise ConfigError(f"unknown key {names}; known keys here: {', '.join(known)}")
    values = {key: _convert(hints[key], value, _join(where, key)) for key, value in data.items()}
    return cls(**values)


def _trainer_settings(settings: dict[str, Any], where: str, own: list[str]) -> dict[str, Any]:
    """``settings`` checked by ``TrainConfig`` itself: known fields, their types and ranges."""
    from swirl_agents.train.config import TrainConfig

    hints = typing.get_type_hints(TrainConfig)
    fields = [f.name for f in dataclasses.fields(TrainConfig) if f.name not in RUN_SET]
    for key in settings:
        if key in RUN_SET:
            raise ConfigError(f"{_join(where, key)}: set by the run itself, not in a config")
        if key not in fields:
            raise ConfigError(
                f"unknown key {_join(where, key)}; known keys here: {', '.join(own + fields)}"
            )
    checked = {
        key: _convert(hints[key], value, _join(where, key)) for key, value in settings.items()
    }
    try:
        TrainConfig(**checked)
    except ValueError as error:
        raise ConfigError(f"{where}: {error}") from None
    return {
        key: list(value) if isinstance(value, tuple) else value for key, value in checked.items()
    }


def _convert(kind: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(kind)
    if dataclasses.is_dataclass(kind):
        return _build(kind, value, where)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__} {value!r}")
        item = typing.get_args(kind)[0]
        return tuple(_convert(item, element, f"{where}[{i}]") for i, element in enumerate(value))
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__} {value!r}")
        (item,) = typing.get_args(kind)
        return [_convert(item, element, f"{where}[{i}]") for i, element in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__} {value!r}")
        _, item = typing.get_args(kind)
        return {str(k): _convert(item, v, f"{where}.{k}") for k, v in value.items()}
    if kind is Any:
        return value
    options = [option for option in typing.get_args(kind) if option is not type(None)]
    if origin in (typing.Union, types.UnionType) and len(options) == 1:  # ``X | None``
        return None if value is None else _convert(options[0], value, where)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind in (int, float, str, bool) and (
        type(value) is kind or (kind is str and isinstance(value, str))
    ):
        return value
    raise ConfigError(f"{where}: expected {kind.__name__}, got {type(value).__name__} {value!r}")


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """``update`` over ``base``; nested mappings of dataclass sections merge key by key."""
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and key != "env_kwargs":
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _set(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``a.b.c`` (list items as ``families.0.train_tasks``) in nested plain data."""
    parts = dotted.split(".")
    node: Any = data
    for depth, part in enumerate(parts[:-1]):
        node = _child(node, part, ".".join(parts[: depth + 1]))
    last = parts[-1]
    if isinstance(node, list):
        node[_index(node, last, dotted)] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise ConfigError(f"override {dotted}: {'.'.join(parts[:-1])} is not a section")


def _child(node: Any, part: str, where: str) -> Any:
    if isinstance(node, list):
        return node[_index(node, part, where)]
    if isinstance(node, dict):
        if part not in node:
            raise ConfigError(f"unknown key {where}")
        return node[part]
    raise ConfigError(f"override {where}: not a section")


def _index(node: list, part: str, where: str) -> int:
    if not part.isdigit() or int(part) >= len(node):
        raise ConfigError(f"{where}: index must be 0..{len(node) - 1}, got {part!r}")
    return int(part)


def _lookup(config: RunConfig, dotted: str) -> Any:
    node: Any = config
    for part in dotted.replace("[", ".").replace("]", "").split("."):
        node = node[int(part)] if part.isdigit() else getattr(node, part)
    return node

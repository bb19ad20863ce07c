"""TRL's GRPOTrainer on swirl envs: an ``environment_factory``, a dataset, judges as rewards.

Checked with TRL 1.16.0 (transformers 5.25). This module never imports ``trl``: it builds
the shapes ``GRPOTrainer`` reads, so it imports (and its tests run) without the extra::

    from trl import GRPOConfig, GRPOTrainer
    from swirl_agents.integrations.trl import trl_dataset, trl_environment

    trainer = GRPOTrainer(
        model="Qwen/Qwen3-0.6B",  # a chat template TRL can parse tool calls with
        train_dataset=trl_dataset("swirl/SynthMath-v0", num_tasks=500),
        environment_factory=trl_environment("swirl/SynthMath-v0", num_tasks=500),
        args=GRPOConfig(max_completion_length=1024),
    )
    trainer.train()

How the pieces map onto GRPOTrainer's contract (``trl/trainer/grpo_trainer.py``):

- ``trl_environment`` returns a class; TRL makes one instance per concurrent rollout (with
  no arguments) and resets it per prompt. Each instance makes its own env with
  ``swirl_agents.stages.make_env``, so it is exactly the env the stages use.
- ``trl_dataset``: one row per task, ``prompt`` (conversational: a function-calling system
  prompt, then the env's ``Question: ...`` turn), ``task_index`` and ``task_id``. TRL hands
  the row to ``reset(**row)``, which starts the env on that task and checks its id (a
  dataset made with other settings than the env fails at once). GRPO compares the
  ``num_generations`` rollouts of one prompt, so they must share a task: a row without
  ``task_index`` is an error, never a random draw. ``reset`` returns None: the row's
  prompt already asks the question.
- Tools: one method per function of ``env.unwrapped.tool_schemas`` (``answer`` included),
  named, typed and documented from that schema. Each call is one env step, so the
  transcript, the step budget and the reward follow the env's rules, and the method
  returns the env's reply (the tool's result, or the error the env shows for a malformed
  call; it never raises on model output). Several calls in one reply are several steps.
  The env records each call in its tag form (``<math_exp>9 * 3</math_exp>``) when that
  reads back as the same call, else as the JSON call; the model's text around its calls
  does not reach the env.
- The final answer: the model calls the ``answer`` tool. A rollout that ends without it
  scores 0, as an episode without an answer does in the env.
- ``get_reward()``: the env's reward (the answer's score; 0 without an answer).
- Several envs: ``trl_environments`` gives TRL's dict of factories; each row names its env
  in the ``environment`` column (``trl_dataset(..., environment=name)``, concatenated).
- Judges: ``judge_reward_function`` scores each rollout's env transcript with SWiRL's
  outcome or process judge (process: the mean or min over the rollout's steps).

What does not map: SWiRL weights each action by its own step reward, while GRPO gives a
completion one scalar reward and one advantage shared by all its tokens; the process
judge's verdicts are therefore reduced to one number per completion.
"""

from __future__ import annotations

import inspect
import json
import keyword
import re
import statistics
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from swirl_agents.judges.factory import judge_backend, make_judge
from swirl_agents.judges.trajectories import outcome_query, process_queries
from swirl_agents.stages.envs import make_env
from swirl_agents.trajectory import Step, Trajectory
from swirl_envs.actions import ANSWER_TAG, FinalAnswer, ToolCall

if TYPE_CHECKING:
    import gymnasium as gym
    from datasets import Dataset

    from swirl_agents.judges.base import Judge

INDEX_COLUMN = "task_index"
"""The dataset column ``reset(**row)`` reads: the task's index in the env."""
TASK_ID_COLUMN = "task_id"
"""The dataset column ``reset(**row)`` checks against the env's task at that index."""
ENVIRONMENT_COLUMN = "environment"
"""TRL's column that routes a row to one of a dict of environment factories."""

TOOL_PROMPT = """\
Please help me answer the following question in just a few words. \
Call the tools you are given when they help; each tool call is one step, and so is the answer, \
and you may take up to {max_steps} steps.
Please do not repeat calls you have already made, as this is a waste of time.
Once you have enough information, give your final answer by calling the answer tool."""
"""The default system prompt of ``trl_dataset``: the env's instructions for function calls.

The envs' own prompts (the SWiRL paper's) ask for tags; a model that sees tools should
call them, and answer through the ``answer`` tool."""

JudgeKind = Literal["outcome", "process"]
Reduction = Literal["mean", "min"]
_JSON_TYPES: dict[str, type] = {"string": str, "number": float, "integer": int, "boolean": bool}


@dataclass(frozen=True)
class EnvSettings:
    """Everything ``make_env`` needs to make one env; the dataset and the factory share it."""

    env_id: str
    env_kwargs: Mapping[str, Any] = field(default_factory=dict)
    split: str | None = None
    num_tasks: int | None = None
    seed: int | None = None

    def make(self) -> gym.Env:
        """A fresh env with these settings (``swirl_agents.stages.make_env``)."""
        return make_env(
            self.env_id, self.env_kwargs, split=self.split, num_tasks=self.num_tasks, seed=self.seed
        )


class SwirlTRLEnvironment:
    """One rollout's swirl env, in the shape of GRPOTrainer's ``environment_factory``.

    ``trl_environment`` makes a subclass per env, with one tool method per function the
    env declares; TRL lists the public functions of the class as tools, so this base class
    has none besides ``reset`` and ``get_reward``.
    """

    settings: ClassVar[EnvSettings]

    def __init__(self) -> None:
        self._env = self.settings.make()
        self._trajectory: Trajectory | None = None

    @property
    def env(self) -> gym.Env:
        """The swirl env this rollout plays."""
        return self._env

    @property
    def trajectory(self) -> Trajectory | None:
        """The episode so far, as a trajectory record (None before the first reset)."""
        return self._trajectory

    def reset(self, **row: Any) -> None:
        """Start the env on the row's task (``task_index``); the row's prompt asks it.

        Raises:
            ValueError: The row has no ``task_index`` (build the dataset with
                ``trl_dataset``), or its ``task_id`` is not the env's task at that index
                (the dataset and the factory were made with different settings).
        """
        index = row.get(INDEX_COLUMN)
        if index is None:
            raise ValueError(
                f"a dataset row for {self.settings.env_id} has no {INDEX_COLUMN!r} column: build "
                "the dataset with trl_dataset(...), so that the rollouts of one prompt share a task"
            )
        observation, _ = self._env.reset(options={"index": int(index)})
        task = self._env.unwrapped.task
        expected = row.get(TASK_ID_COLUMN)
        if expected is not None and expected != task.id:
            raise ValueError(
                f"row {INDEX_COLUMN}={index} is task {expected!r}, but the env's task there is "
                f"{task.id!r}: make the dataset and the environment with the same settings"
            )
        self._trajectory = Trajectory(
            task_id=task.id,
            sample=0,
            env_id=self.settings.env_id,
            question=task.question,
            answers=list(task.answers),
            prompt=observation,
            env_kwargs=dict(self.settings.env_kwargs),
            meta={"index": int(index)},
        )

    def get_reward(self) -> float:
        """The env's reward for the rollout: the answer's score, 0 without an answer."""
        return 0.0 if self._trajectory is None else self._trajectory.score

    def _call(self, name: str, arguments: dict[str, Any]) -> str:
        """Step the env with one tool call; return the env's reply to show the model."""
        trajectory = self._trajectory
        if trajectory is None:
            return "Error: the episode has not started."
        if trajectory.terminated or trajectory.truncated:
            why = "you answered" if trajectory.terminated else "the step budget is spent"
            return f"Error: the episode is over ({why}); this call was not run."
        _, reward, terminated, truncated, info = self._env.step(self._action(name, arguments))
        trajectory.steps.append(Step.from_info(info, reward))
        trajectory.terminated, trajectory.truncated = bool(terminated), bool(truncated)
        if terminated:
            trajectory.score = float(reward)
            trajectory.metrics = {k: float(v) for k, v in info.get("metrics", {}).items()}
        reply = info["feedback"].strip() or "Your answer was recorded; the episode is over."
        if truncated:
            reply += "\nThe step budget is spent; the episode is over."
        return reply

    def _action(self, name: str, arguments: dict[str, Any]) -> str:
        """The action the env records: the call in tag form if that reads back the same.

        The tag form is what the env's prompts, its gold paths and the judges read; a value
        that would not survive it (one holding a tag, say) stays a JSON call, which the env
        parses the same way and answers with its own error when malformed. ``<`` is escaped
        in the JSON, so a tag inside a value is never read as a call of another tool.
        """
        call = json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False, default=str)
        call = call.replace("<", "\\u003c")
        env = self._env.unwrapped
        parsed = env.parse_action(call)
        if isinstance(parsed, FinalAnswer):
            tagged = f"<{ANSWER_TAG}>{parsed.text}</{ANSWER_TAG}>"
        elif isinstance(parsed, ToolCall):
            tag = env.tool(parsed.name).tag
            tagged = f"<{tag}>{parsed.argument}</{tag}>"
        else:
            return call
        return tagged if env.parse_action(tagged) == parsed else call


_RESERVED = frozenset(dir(SwirlTRLEnvironment))


def trl_environment(
    env_id: str,
    env_kwargs: Mapping[str, Any] | None = None,
    *,
    split: str | None = None,
    num_tasks: int | None = None,
    seed: int | None = None,
) -> type[SwirlTRLEnvironment]:
    """A class for GRPOTrainer's ``environment_factory``: the env ``env_id`` and its tools.

    Takes ``make_env``'s arguments; give ``trl_dataset`` the same ones. One env is made
    here to read its tool schemas, so a bad id or setting fails now, not in training.

    Raises:
        StageError: The env cannot be made.
        ValueError: A tool schema cannot be a Python method (a reserved or invalid name,
            an argument type other than string, number, integer or boolean).
    """
    settings = EnvSettings(env_id, dict(env_kwargs or {}), split, num_tasks, seed)
    probe = settings.make()
    try:
        schemas = probe.unwrapped.tool_schemas
    finally:
        probe.close()
    class_name = re.sub(r"\W", "_", env_id.rsplit("/", 1)[-1])
    methods: dict[str, Callable[..., str]] = {}
    for schema in schemas:
        method = _tool_method(schema, class_name)
        if method.__name__ in methods:
            raise ValueError(f"{env_id} declares the tool {method.__name__!r} twice")
        methods[method.__name__] = method
    namespace = {
        "settings": settings,
        "__module__": __name__,
        "__doc__": f"The swirl env {env_id} for TRL; tools: {', '.join(methods)}.",
        **methods,
    }
    return type(class_name, (SwirlTRLEnvironment,), namespace)


def trl_environments(
    specs: Mapping[str, str | tuple[str, Mapping[str, Any]]],
    *,
    split: str | None = None,
    num_tasks: int | None = None,
    seed: int | None = None,
) -> dict[str, type[SwirlTRLEnvironment]]:
    """TRL's dict of environment factories for a multi-task run: ``{name: env class}``.

    Args:
        specs: ``{name: env_id}`` or ``{name: (env_id, env_kwargs)}``; the names are the
            values of the dataset's ``environment`` column.
        split, num_tasks, seed: ``make_env``'s arguments, the same for every env.
    """
    return {
        name: trl_environment(*_env_spec(spec), split=split, num_tasks=num_tasks, seed=seed)
        for name, spec in specs.items()
    }


def trl_dataset(
    env_id: str,
    env_kwargs: Mapping[str, Any] | None = None,
    *,
    split: str | None = None,
    num_tasks: int | None = None,
    seed: int | None = None,
    environment: str | None = None,
    system_prompt: str | None = None,
) -> Dataset:
    """The env's tasks as a GRPOTrainer dataset: ``prompt``, ``task_index``, ``task_id``.

    Args:
        env_id, env_kwargs, split, num_tasks, seed: ``make_env``'s arguments, the same as
            the factory's (a data env's first ``num_tasks`` questions, as the stages use).
        environment: Adds the ``environment`` column with this name, for a dict of
            factories (``trl_environments``); concatenate one dataset per env.
        system_prompt: The system turn, formatted with ``{max_steps}`` as the envs do;
            defaults to ``TOOL_PROMPT`` (function calls and the ``answer`` tool).

    Raises:
        StageError: The env cannot be made.
        ValueError: The env has no task to offer (``num_tasks`` below 1).
    """
    from datasets import Dataset

    env = EnvSettings(env_id, dict(env_kwargs or {}), split, num_tasks, seed).make()
    try:
        base = env.unwrapped
        count = len(base.tasks) if num_tasks is None else min(num_tasks, len(base.tasks))
        if count < 1:
            raise ValueError(f"no tasks to train on: num_tasks={num_tasks}")
        system = (TOOL_PROMPT if system_prompt is None else system_prompt).format(
            max_steps=base.max_steps
        )
        rows = []
        for index in range(count):
            _, info = env.reset(options={"index": index})
            turns = [message for message in info["messages"] if message["role"] != "system"]
            row = {
                "prompt": [{"role": "system", "content": system}, *turns],
                INDEX_COLUMN: index,
                TASK_ID_COLUMN: info["task_id"],
            }
            if environment is not None:
                row[ENVIRONMENT_COLUMN] = environment
            rows.append(row)
    finally:
        env.close()
    return Dataset.from_list(rows)


def judge_reward_function(
    spec: str,
    *,
    kind: JudgeKind = "outcome",
    reduce: Reduction = "mean",
    **judge_options: Any,
) -> JudgeReward:
    """A SWiRL judge as a TRL reward function, scoring each rollout's env transcript.

    TRL gives one reward per completion, so the process judge's step verdicts are reduced:
    ``reduce="mean"`` (the share of good steps; soft scores where the judge has them) or
    ``"min"`` (1 only when every step is good, as the paper's process filter keeps). The
    steps are the env's: every tool call, malformed ones and the answer included, in the
    env's tag form (the model's text around its calls is not judged). A rollout that took
    no step scores 0; one whose verdicts were all unparseable gets None, which TRL leaves
    out of its sum. The outcome judge scores the final answer (0 without one).

    The judge is built per env class on first use with ``make_judge(spec, env,
    **judge_options)``, so each env gets its own tasks (programmatic) or prompts (model
    judges); rollouts of an env not made by ``trl_environment`` get None.

    Args:
        spec: ``programmatic``, ``hf:NAME_OR_PATH`` or ``openai:BASE_URL``.
        kind: ``"outcome"`` or ``"process"``.
        reduce: How step verdicts become one process reward: ``"mean"`` or ``"min"``.
        **judge_options: ``make_judge``'s options (``hf={"model": loaded}``,
            ``openai={"model": NAME}``, ``process_prompt=``, ...).

    Raises:
        ValueError: An unknown spec, kind or reduction.
    """
    backend, _ = judge_backend(spec)
    if kind not in ("outcome", "process"):
        raise ValueError(f"kind must be 'outcome' or 'process', got {kind!r}")
    if reduce not in ("mean", "min"):
        raise ValueError(f"reduce must be 'mean' or 'min', got {reduce!r}")
    return JudgeReward(spec, kind, reduce, judge_options, name=f"swirl_{kind}_{backend}")


class JudgeReward:
    """A reward function with TRL's signature; see ``judge_reward_function``."""

    def __init__(
        self,
        spec: str,
        kind: JudgeKind,
        reduce: Reduction,
        judge_options: Mapping[str, Any],
        *,
        name: str,
    ):
        self.spec, self.kind, self.reduce = spec, kind, reduce
        self.judge_options = dict(judge_options)
        self.__name__ = name  # TRL logs each reward under its function's name
        self._judges: dict[type, Judge] = {}

    def __call__(
        self,
        prompts: list[Any],
        completions: list[Any],
        environments: list[Any] | None = None,
        **columns: Any,
    ) -> list[float | None]:
        """One reward per completion (TRL passes the rollouts' env instances).

        Raises:
            ValueError: TRL passed no environments (the trainer has no environment_factory).
        """
        if environments is None:
            raise ValueError(
                "SWiRL's judges read the env's transcript: give GRPOTrainer "
                "environment_factory=trl_environment(...) (or trl_environments(...))"
            )
        rewards: list[float | None] = [None] * len(environments)
        groups: dict[type, list[int]] = {}
        for i, environment in enumerate(environments):
            if isinstance(environment, SwirlTRLEnvironment) and environment.trajectory is not None:
                groups.setdefault(type(environment), []).append(i)
        for env_class, indices in groups.items():
            if env_class not in self._judges:
                env = environments[indices[0]].env
                self._judges[env_class] = make_judge(self.spec, env, **self.judge_options)
            trajectories = [environments[i].trajectory for i in indices]
            scores = self._scores(self._judges[env_class], trajectories)
            for i, score in zip(indices, scores, strict=True):
                rewards[i] = score
        return rewards

    def _scores(self, judge: Judge, trajectories: list[Trajectory]) -> list[float | None]:
        if self.kind == "outcome":
            verdicts = judge.judge_outcome([outcome_query(t) for t in trajectories])
            return [verdict.score for verdict in verdicts]
        queries = [process_queries(t) for t in trajectories]
        verdicts = iter(judge.judge_process([q for qs in queries for q in qs]))
        scores: list[float | None] = []
        for steps in queries:
            found = [next(verdicts).score for _ in steps]
            parsed = [score for score in found if score is not None]
            if not steps:
                scores.append(0.0)
            elif not parsed:
                scores.append(None)
            else:
                scores.append(statistics.fmean(parsed) if self.reduce == "mean" else min(parsed))
        return scores


def build_tiny_trl_model(out_dir: str | Path, texts: Iterable[str], *, seed: int = 0) -> Path:
    """A tiny random Qwen3 model with TRL's Qwen3 chat template, for CPU smoke runs and tests.

    GRPOTrainer runs tools only with a chat template it ships; this one is read from the
    installed TRL (``trl/chat_templates/qwen3.jinja``). ``texts`` train the tokenizer
    (``swirl_agents.tiny.tiny_corpus``); ``TOOL_PROMPT`` is added to them.

    Raises:
        ImportError: TRL is not installed.
    """
    from importlib.resources import files

    from swirl_agents.tiny import build_tiny_qwen3_model

    try:
        template = files("trl").joinpath("chat_templates", "qwen3.jinja").read_text("utf-8")
    except ModuleNotFoundError as error:
        raise ImportError("TRL is not installed: pip install 'swirl-gym[trl]'") from error
    corpus = [TOOL_PROMPT, *texts]
    return build_tiny_qwen3_model(out_dir, corpus, template, seed=seed)


def _env_spec(spec: str | tuple[str, Mapping[str, Any]]) -> tuple[str, Mapping[str, Any]]:
    if isinstance(spec, str):
        return spec, {}
    if isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[0], str):
        return spec[0], dict(spec[1] or {})
    raise TypeError(f"an env spec is an env id or (env_id, env_kwargs), got {spec!r}")


def _tool_method(schema: Mapping[str, Any], owner: str) -> Callable[..., str]:
    """A method for one OpenAI function schema: its name, typed arguments and docstring.

    TRL (through transformers' ``get_json_schema``) rebuilds the schema from the method's
    signature and Google-style docstring, and calls it with the model's parsed arguments.
    The method takes any keywords, so a call with a wrong or missing argument still
    reaches the env, which answers it with its own error.
    """
    function = schema.get("function", schema)
    name = function.get("name")
    if not isinstance(name, str) or not _valid_name(name) or name in _RESERVED:
        raise ValueError(f"the tool name {name!r} cannot be a method of a TRL environment")
    parameters = function.get("parameters") or {}
    required = set(parameters.get("required") or ())
    signature = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    annotations: dict[str, Any] = {"return": str}
    lines = []
    for argument, spec in (parameters.get("properties") or {}).items():
        kind = spec.get("type", "string")
        if not _valid_name(argument) or kind not in _JSON_TYPES:
            raise ValueError(f"the tool {name!r} has an argument {argument!r} of type {kind!r}")
        hint = _JSON_TYPES[kind] if argument in required else _JSON_TYPES[kind] | None
        default = inspect.Parameter.empty if argument in required else None
        signature.append(
            inspect.Parameter(
                argument, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=hint
            )
        )
        annotations[argument] = hint
        lines.append(f"    {argument}: {_one_line(spec.get('description')) or f'The {argument}.'}")

    def method(self: SwirlTRLEnvironment, **arguments: Any) -> str:
        return self._call(name, arguments)

    method.__name__, method.__qualname__ = name, f"{owner}.{name}"
    method.__signature__ = inspect.Signature(signature, return_annotation=str)  # type: ignore[attr-defined]
    method.__annotations__ = annotations
    description = _one_line(function.get("description")) or f"Call the {name} tool."
    args = "\n\nArgs:\n" + "\n".join(lines) if lines else ""
    returns = "\n\nReturns:\n    The environment's reply: the result, or an error to correct."
    method.__doc__ = description + args + returns
    return method


def _valid_name(name: str) -> bool:
    return name.isidentifier() and not keyword.iskeyword(name) and not name.startswith("_")


def _one_line(text: Any) -> str:
    return " ".join(str(text or "").split())

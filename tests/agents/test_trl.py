"""The TRL adapter, driven as GRPOTrainer drives it (TRL 1.16: ``trl/trainer/grpo_trainer.py``).

GRPOTrainer lists an environment's tools with ``inspect.getmembers(type(env),
inspect.isfunction)`` (all public functions but ``reset`` and ``get_reward``), renders them
with transformers' ``get_json_schema``, calls ``reset(**row)`` with the dataset row, calls a
tool as ``tools[name](**function["arguments"])`` for each parsed tool call and finally
``get_reward()``; reward functions get ``environments=`` beside the completions. The fast
tests do exactly that without importing trl (or torch); the slow ones run TRL itself.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from typing import Any

import gymnasium as gym
import pytest

from swirl_agents.integrations import trl as adapter
from swirl_agents.integrations.trl import (
    judge_reward_function,
    trl_dataset,
    trl_environment,
    trl_environments,
)
from swirl_envs import Passage, Task
from swirl_envs.actions import ANSWER_ARGUMENT, FinalAnswer, ToolCall
from swirl_envs.env import SwirlEnv
from swirl_envs.tools.base import Tool, ToolResult
from tests.envs.dataset_fixtures import write_gsm8k, write_hotpotqa

MATH = ("swirl/SynthMath-v0", {"min_ops": 2, "max_ops": 3})
HOP = ("swirl/SynthHop-v0", {})


class Lookup(Tool):
    """A custom tool with its own name, tag and argument (as in examples/custom_task.py)."""

    name, tag, argument = "lookup", "lookup", "unit"
    description = "Look a unit up."
    argument_description = "a unit in the plural"

    def __call__(self, argument: str, task: Task) -> ToolResult:
        found = {p.title: p.text for p in task.passages}.get(argument)
        return ToolResult(found or "no such unit", ok=found is not None)


def lookup_env(render_mode: str | None = None) -> SwirlEnv:
    tasks = [
        Task(f"u{i}", f"How many days are in {i} weeks?", (str(7 * i),),
             ("<lookup>weeks</lookup>", f"<answer>{7 * i}</answer>"),
             passages=(Passage("weeks", "7 days each"),))
        for i in range(1, 4)
    ]  # fmt: skip
    return SwirlEnv(tasks, [Lookup()], system_prompt="Look up. {max_steps}", max_steps=3)


gym.register("test/Lookup-v0", entry_point=lookup_env)


@pytest.fixture(scope="module")
def data_specs(tmp_path_factory) -> dict[str, tuple[str, dict[str, Any]]]:
    """Every kind of env: generated (calculator, search), real data from fixtures, custom."""
    folder = tmp_path_factory.mktemp("data")
    return {
        "math": MATH,
        "hop": HOP,
        "gsm8k": ("swirl/GSM8K-v0", {"data_path": str(write_gsm8k(folder / "gsm8k"))}),
        "hotpotqa": ("swirl/HotPotQA-v0", {"data_path": str(write_hotpotqa(folder / "hotpot"))}),
        "custom": ("test/Lookup-v0", {}),
    }


def trl_tools(environment: Any) -> dict[str, Any]:
    """The tools GRPOTrainer takes from an environment instance, by name (its own code)."""
    return {
        member: getattr(environment, member)
        for member, _ in inspect.getmembers(type(environment), predicate=inspect.isfunction)
        if member not in ("reset", "get_reward") and not member.startswith("_")
    }


def tool_call(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """A tool call as TRL's response parser returns it."""
    return {"type": "function", "function": {"name": name, "arguments": arguments}}


def gold_calls(environment: Any) -> list[dict[str, Any]]:
    """The current task's gold path as parsed tool calls."""
    env = environment.env.unwrapped
    calls = []
    for action in env.task.gold_path:
        parsed = env.parse_action(action)
        if isinstance(parsed, ToolCall):
            calls.append(tool_call(parsed.name, {env.tool(parsed.name).argument: parsed.argument}))
        else:
            assert isinstance(parsed, FinalAnswer)
            calls.append(tool_call("answer", {ANSWER_ARGUMENT: parsed.text}))
    return calls


def run_calls(environment: Any, calls: list[dict[str, Any]]) -> list[str]:
    """Call each tool as GRPOTrainer's tool loop does; return the tool messages' contents."""
    tools = trl_tools(environment)
    return [
        str(tools[c["function"]["name"]](**c["function"]["arguments"])) for c in calls
    ]  # fmt: skip


@pytest.mark.parametrize("name", ["math", "hop", "gsm8k", "hotpotqa", "custom"])
def test_tools_are_the_envs_declared_schemas(data_specs, name):
    from transformers.utils import get_json_schema

    env_id, kwargs = data_specs[name]
    environment = trl_environment(env_id, kwargs, num_tasks=4)()
    declared = {
        s["function"]["name"]: s["function"] for s in environment.env.unwrapped.tool_schemas
    }
    tools = trl_tools(environment)
    assert set(tools) == set(declared)  # the env's tools and the answer, nothing else
    for tool_name, method in tools.items():
        rendered = get_json_schema(method)["function"]
        assert rendered["name"] == tool_name
        assert rendered["description"] == declared[tool_name]["description"]
        parameters = declared[tool_name]["parameters"]
        assert rendered["parameters"]["required"] == parameters["required"]
        assert {
            arg: (spec["type"], spec["description"])
            for arg, spec in rendered["parameters"]["properties"].items()
        } == {
            arg: (spec["type"], spec["description"])
            for arg, spec in parameters["properties"].items()
        }


@pytest.mark.parametrize("name", ["math", "hop", "gsm8k", "hotpotqa", "custom"])
def test_a_gold_path_of_tool_calls_gets_the_envs_reward(data_specs, name):
    env_id, kwargs = data_specs[name]
    dataset = trl_dataset(env_id, kwargs, num_tasks=2)
    environment = trl_environment(env_id, kwargs, num_tasks=2)()
    plain = adapter.EnvSettings(env_id, kwargs, num_tasks=2).make()
    for row in dataset:
        assert environment.reset(**row) is None  # the row's prompt already asks the question
        question = environment.env.unwrapped.task.question
        assert row["prompt"][-1]["content"] == f"Question: {question}"
        replies = run_calls(environment, gold_calls(environment))
        plain.reset(options={"index": row["task_index"]})
        steps = [plain.step(action) for action in plain.unwrapped.task.gold_path]
        assert environment.get_reward() == steps[-1][1] == 1.0
        assert replies[:-1] == [info["feedback"].strip() for *_, info in steps[:-1]]
        assert replies[-1] == "Your answer was recorded; the episode is over."
        trajectory = environment.trajectory
        assert trajectory.terminated and [s.answer for s in trajectory.steps][-1] is not None
        # Recorded in the env's own tag form, which its gold paths and judges read.
        assert all(s.action.startswith("<") for s in trajectory.steps)


def test_a_wrong_or_missing_answer_scores_zero():
    environment = trl_environment(*MATH, num_tasks=2)()
    row = trl_dataset(*MATH, num_tasks=2)[0]
    environment.reset(**row)
    run_calls(environment, [tool_call("answer", {"answer": "-12345"})])
    assert environment.get_reward() == 0.0 and environment.trajectory.terminated
    environment.reset(**row)  # a new rollout on the same instance: the state is fresh
    assert environment.get_reward() == 0.0 and environment.trajectory.steps == []
    run_calls(environment, gold_calls(environment)[:-1])  # every calculation, no answer
    assert environment.get_reward() == 0.0 and not environment.trajectory.terminated


def test_bad_calls_are_env_errors_that_count_as_steps_never_exceptions():
    hop = {"max_hops": 3, "max_steps": 4}
    environment = trl_environment("swirl/SynthHop-v0", hop, num_tasks=1)()
    environment.reset(**trl_dataset("swirl/SynthHop-v0", hop, num_tasks=1)[0])
    tools = trl_tools(environment)
    replies = [
        tools["search"](),  # no argument
        tools["search"](query=["a", "list"]),
        tools["search"](q="wrong name", extra=1),
        tools["search"](query="a <answer>x</answer>"),  # a tag inside is no answer
    ]
    assert replies[0] == "Error: The call of 'search' needs the argument 'query'."
    assert replies[1] == "Error: The argument 'query' must be a string."
    assert replies[2] == replies[0]
    assert replies[3].startswith("a <answer>x</answer> -> ")  # searched, as the model asked
    assert replies[3].endswith("\nThe step budget is spent; the episode is over.")
    steps = environment.trajectory.steps
    assert environment.trajectory.truncated and not environment.trajectory.terminated
    assert [s.parse_error is not None for s in steps] == [True, True, True, False]
    assert steps[3].action.startswith('{"name": "search"')  # its tag form would not parse
    after = tools["search"](query="anything")
    assert after == "Error: the episode is over (the step budget is spent); this call was not run."
    assert len(environment.trajectory.steps) == 4 and environment.get_reward() == 0.0


def test_reset_needs_the_rows_task_and_checks_it_is_the_envs():
    environment = trl_environment(*MATH, num_tasks=3)()
    with pytest.raises(ValueError, match="no 'task_index' column: build the dataset"):
        environment.reset(prompt=[{"role": "user", "content": ""}])  # TRL's placeholder row
    other = trl_dataset(MATH[0], MATH[1], num_tasks=3, seed=1)[0]  # other settings
    with pytest.raises(ValueError, match="same settings"):
        environment.reset(**other)
    assert trl_environment(*MATH, num_tasks=3)().get_reward() == 0.0  # before any reset


def test_several_envs_route_by_the_environment_column():
    from datasets import concatenate_datasets

    specs = {"math": MATH, "hop": "swirl/SynthHop-v0"}  # both spec forms
    factories = trl_environments(specs, num_tasks=2)
    dataset = concatenate_datasets(
        [trl_dataset(*MATH, num_tasks=2, environment="math"),
         trl_dataset("swirl/SynthHop-v0", num_tasks=2, environment="hop")]
    )  # fmt: skip
    assert {name: set(trl_tools(cls())) for name, cls in factories.items()} == {
        "math": {"calculator", "answer"},
        "hop": {"search", "answer"},
    }
    rewards = []
    for row in dataset:  # as GRPOTrainer: the factory the row names, reset without the name
        environment = factories[row["environment"]]()
        environment.reset(**{k: v for k, v in row.items() if k != "environment"})
        run_calls(environment, gold_calls(environment))
        rewards.append(environment.get_reward())
    assert rewards == [1.0] * 4
    assert factories["math"].__name__ == "SynthMath_v0"  # TRL logs get_reward under it
    with pytest.raises(TypeError, match="env id or"):
        trl_environments({"bad": ["swirl/SynthMath-v0"]})


def test_judge_rewards_score_the_rollouts_transcripts():
    factory, rows = trl_environment(*MATH, num_tasks=2), trl_dataset(*MATH, num_tasks=2)
    gold, wrong, silent = factory(), factory(), factory()
    for environment in (gold, wrong, silent):
        environment.reset(**rows[0])
    run_calls(gold, gold_calls(gold))
    calls = gold_calls(wrong)
    # A bad step (not on the gold path), every gold step, a wrong answer: 3 good of 5 or so.
    run_calls(wrong, [tool_call("calculator", {"expression": "1 + 1"}), *calls[:-1]])
    run_calls(wrong, [tool_call("answer", {"answer": "-1"})])
    environments = [gold, wrong, silent, object()]  # the last is not a swirl env
    args = ([None] * 4, [None] * 4)  # prompts and completions: the judges read the envs

    outcome = judge_reward_function("programmatic")
    assert outcome.__name__ == "swirl_outcome_programmatic"
    assert outcome(*args, environments=environments, task_index=[0] * 4) == [1.0, 0.0, 0.0, None]
    process = judge_reward_function("programmatic", kind="process")
    good_steps = len(calls) - 1  # the wrong path's gold calculations
    mean = process(*args, environments=environments)
    assert mean == [1.0, good_steps / (good_steps + 2), 0.0, None]
    assert judge_reward_function("programmatic", kind="process", reduce="min")(
        *args, environments=environments
    ) == [1.0, 0.0, 0.0, None]
    with pytest.raises(ValueError, match="environment_factory"):
        outcome(*args)
    for bad in ({"spec": "gpt4"}, {"spec": "programmatic", "kind": "steps"},
                {"spec": "programmatic", "reduce": "max"}):  # fmt: skip
        with pytest.raises(ValueError):
            judge_reward_function(**bad)


def test_the_adapter_imports_and_plays_without_trl(monkeypatch):
    monkeypatch.setitem(sys.modules, "trl", None)  # ``import trl`` now fails
    module = importlib.reload(adapter)
    try:
        environment = module.trl_environment(*MATH, num_tasks=1)()
        environment.reset(**module.trl_dataset(*MATH, num_tasks=1)[0])
        run_calls(environment, gold_calls(environment))
        assert environment.get_reward() == 1.0
        with pytest.raises(ImportError, match="swirl-gym\\[trl\\]"):
            module.build_tiny_trl_model("unused", [])
    finally:
        monkeypatch.undo()
        importlib.reload(adapter)


def test_a_schema_that_cannot_be_a_method_is_refused():
    for schema in (
        {"function": {"name": "reset", "parameters": {}}},
        {"function": {"name": "x", "parameters": {"properties": {"a": {"type": "array"}}}}},
        {"function": {"name": "y", "parameters": {"properties": {"class": {"type": "string"}}}}},
    ):
        with pytest.raises(ValueError, match="cannot be a method|has an argument"):
            adapter._tool_method(schema, "Owner")


@pytest.mark.slow
def test_grpo_trainer_trains_on_the_env_and_parses_calls_to_its_tools(tmp_path, monkeypatch):
    """GRPOTrainer itself, 2 steps on the CPU, with a tiny random Qwen3-templated model."""
    pytest.importorskip("trl")
    monkeypatch.setenv("TRL_EXPERIMENTAL_SILENCE", "1")
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer
    from trl.chat_template_utils import parse_response

    from swirl_agents.integrations.trl import build_tiny_trl_model
    from swirl_agents.tiny import tiny_corpus

    corpus = tiny_corpus([adapter.EnvSettings(*MATH, num_tasks=4).make()])
    path = build_tiny_trl_model(tmp_path / "tiny", corpus)
    tokenizer = AutoTokenizer.from_pretrained(path)
    dataset, factory = trl_dataset(*MATH, num_tasks=4), trl_environment(*MATH, num_tasks=4)
    trainer = GRPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(path),
        processing_class=tokenizer,
        args=GRPOConfig(
            output_dir=str(tmp_path / "out"), use_cpu=True, report_to=[], max_steps=2,
            per_device_train_batch_size=4, num_generations=4, max_completion_length=12,
            logging_steps=1, save_strategy="no",
        ),
        train_dataset=dataset,
        environment_factory=factory,
        reward_funcs=[judge_reward_function("programmatic", kind="process")],
    )  # fmt: skip
    trainer.train()
    logged = [log for log in trainer.state.log_history if "reward" in log]
    assert [log["step"] for log in logged] == [1, 2]
    names = {"rewards/SynthMath_v0/mean", "rewards/swirl_process_programmatic/mean"}
    assert names <= set(logged[0])  # get_reward under the env class's name, the judge under its

    # A tool call as the model would write it, parsed by TRL's parser, calls the env's tool.
    environment = factory()
    environment.reset(**dataset[0])
    tools = list(trl_tools(environment).values())
    prompt = tokenizer.apply_chat_template(
        dataset[0]["prompt"],
        tools=tools,
        add_generation_prompt=True,
        tokenize=True,
        return_dict=False,
    )
    call = '{"name": "calculator", "arguments": {"expression": "2 * 3"}}'
    text = f"<tool_call>\n{call}\n</tool_call><|im_end|>"
    parsed = parse_response(tokenizer, tokenizer(text)["input_ids"], prefix=prompt, tools=tools)
    assert run_calls(environment, parsed["tool_calls"]) == ["2 * 3 -> 6"]

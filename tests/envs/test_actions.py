"""Action parsing (``parse_action``) and how the env answers malformed actions.

Model text is untrusted: every malformed action must come back as an ``Error:`` line
that says what was wrong, count as a step, give reward 0 and never raise, quickly.
"""

from __future__ import annotations

import time

import pytest

from swirl_envs import Passage, Task
from swirl_envs.actions import FinalAnswer, ParseError, ToolCall, parse_action
from swirl_envs.env import SwirlEnv
from swirl_envs.prompts import SEARCH_PROMPT
from swirl_envs.tools.base import ToolResult
from swirl_envs.tools.calculator import Calculator
from swirl_envs.tools.search import SearchTool

TASK = Task(
    id="ada",
    question="Where was Ada Lovelace born?",
    answers=("London",),
    passages=(
        Passage("Ada Lovelace", "Ada Lovelace was born in London in 1815."),
        Passage("Paris", "Paris is the capital of France."),
    ),
)
TOOLS = [SearchTool("distractor"), Calculator()]
TIME_BOUND_S = 1.0
MEGABYTE = 1 << 20


def make_env(max_steps: int = 10, **kwargs) -> SwirlEnv:
    env = SwirlEnv([TASK], TOOLS, system_prompt=SEARCH_PROMPT, max_steps=max_steps, **kwargs)
    env.reset(seed=0)
    return env


def timed_step(env: SwirlEnv, action):
    start = time.perf_counter()
    result = env.step(action)
    assert time.perf_counter() - start < TIME_BOUND_S
    return result


# -- well-formed actions --------------------------------------------------------------

WELL_FORMED = [
    # the paper's tags, after free reasoning
    (
        "I need her birthplace. <search_query>Ada Lovelace</search_query>",
        ToolCall("search", "Ada Lovelace"),
    ),
    ("Add them up.\n<math_exp> 1815 + 37 </math_exp>", ToolCall("calculator", "1815 + 37")),
    ("So the answer is <answer> London </answer>", FinalAnswer("London")),
    ("<answer>London</answer>\n", FinalAnswer("London")),
    # OpenAI-style JSON calls
    (
        '{"name": "search", "arguments": {"query": "Ada Lovelace"}}',
        ToolCall("search", "Ada Lovelace"),
    ),
    (
        '{"name": "calculator", "arguments": "{\\"expression\\": \\"6 * 7\\"}"}',
        ToolCall("calculator", "6 * 7"),
    ),
    (
        '{"type": "function", "function": {"name": "answer", "arguments": {"answer": "London"}}}',
        FinalAnswer("London"),
    ),
    (
        '{"tool_calls": [{"id": "call_1", "type": "function", "function": '
        '{"name": "search", "arguments": "{\\"query\\": \\"Paris\\"}"}}]}',
        ToolCall("search", "Paris"),
    ),
    (
        'Let me search.\n```json\n{"name": "search", "arguments": {"query": "Paris"}}\n```\n',
        ToolCall("search", "Paris"),
    ),
    (
        'I know it now. {"name": "answer", "arguments": {"answer": "London"}}',
        FinalAnswer("London"),
    ),
    # a number where a string belongs is read as its text
    ('{"name": "answer", "arguments": {"answer": 42}}', FinalAnswer("42")),
]


@pytest.mark.parametrize(("action", "expected"), WELL_FORMED, ids=lambda value: repr(value)[:40])
def test_well_formed_action_parses_to_its_call_or_answer(action, expected):
    assert parse_action(action, TOOLS) == expected


def test_every_paper_tag_through_the_env_runs_its_tool_or_scores_the_answer():
    env = make_env()
    observation, reward, *_ = timed_step(env, "<search_query>Ada Lovelace</search_query>")
    assert "Ada Lovelace -> Ada Lovelace: Ada Lovelace was born in London in 1815." in observation
    observation, reward, *_ = timed_step(env, "<math_exp>2024 - 1815</math_exp>")
    assert "2024 - 1815 -> 209" in observation and reward == 0.0
    observation, reward, terminated, truncated, info = timed_step(env, "<answer>London</answer>")
    assert (reward, terminated, truncated) == (1.0, True, False)


@pytest.mark.parametrize(
    "action",
    [
        action
        for action, expected in WELL_FORMED
        if "{" in action and isinstance(expected, ToolCall)
    ],
    ids=lambda value: repr(value)[:40],
)
def test_json_call_through_the_env_gives_the_same_feedback_as_its_tag(action):
    call = parse_action(action, TOOLS)
    assert isinstance(call, ToolCall)
    tag = {tool.name: tool.tag for tool in TOOLS}[call.name]
    from_json = timed_step(make_env(), action)[4]["feedback"]
    from_tag = timed_step(make_env(), f"<{tag}>{call.argument}</{tag}>")[4]["feedback"]
    assert from_json == from_tag and "Error" not in from_json


# -- malformed actions ----------------------------------------------------------------

MALFORMED = [
    ("The answer is London.", "No tool call or answer found"),
    ("<answer>London</answer> <answer>Paris</answer>", "Found 2 calls in one step"),
    (
        "<search_query>Ada</search_query> then <math_exp>1+1</math_exp>",
        "Found 2 calls in one step",
    ),
    (
        '{"tool_calls": [{"name": "search", "arguments": {"query": "a"}}, '
        '{"name": "search", "arguments": {"query": "b"}}]}',
        "Found 2 tool calls",
    ),
    ('{"tool_calls": []}', "Found 0 tool calls"),
    ("<python>import os</python>", "Unknown tool <python>"),
    ('{"name": "python", "arguments": {"code": "import os"}}', "Unknown tool 'python'"),
    ("<answer>London", "Unclosed or nested tag"),
    ("London</answer>", "Unclosed or nested tag"),
    ("<answer>London</math_exp>", "Unclosed or nested tag"),
    ("<answer><math_exp>1+1</math_exp></answer>", "Unclosed or nested tag"),
    ("<answer>  </answer>", "The answer call is empty"),
    ("", "The action is empty"),
    (" \n\t ", "The action is empty"),
    ("x" * MEGABYTE, f"The action is {MEGABYTE} characters long; the limit is 8192"),
    ("\ud800", "invalid Unicode at position 0"),
    ("<answer>\udfffLondon</answer>", "invalid Unicode at position 8"),
    (None, "An action must be text, not NoneType"),
    (b"<answer>London</answer>", "An action must be text, not bytes"),
    (42, "An action must be text, not int"),
    (
        '{"name": "answer", "arguments": "' + "[" * 3000 + "]" * 3000 + '"}',
        "The arguments of 'answer' are not valid JSON",
    ),
    (
        '{"name": "answer", "arguments": {"answer": ' + "[" * 3000 + "]" * 3000 + "}}",
        "No tool call or answer found",
    ),
    ('{"name": "answer", "arguments": "London"}', "The arguments of 'answer' are not valid JSON"),
    ('{"name": "answer", "arguments": {}}', "needs the argument 'answer'"),
    ('{"name": "answer", "arguments": {"answer": ["London"]}}', "must be a string"),
    ('{"name": "answer", "arguments": {"answer": {"city": "London"}}}', "must be a string"),
    ('{"name": "answer", "arguments": {"answer": true}}', "must be a string"),
    ('{"name": "answer", "arguments": {"answer": null}}', "must be a string"),
]


@pytest.mark.parametrize(("action", "reason"), MALFORMED, ids=lambda value: repr(value)[:40])
def test_malformed_action_parses_to_an_error_that_says_what_was_wrong(action, reason):
    parsed = parse_action(action, TOOLS)
    assert isinstance(parsed, ParseError)
    assert reason in parsed.message


@pytest.mark.parametrize(("action", "reason"), MALFORMED, ids=lambda value: repr(value)[:40])
def test_malformed_action_is_an_error_observation_with_reward_0_and_counts_step(action, reason):
    env = make_env()
    before, _ = env.reset(seed=0)
    observation, reward, terminated, truncated, info = timed_step(env, action)
    feedback = observation[len(before) :]
    assert "\nError: " in feedback and reason in feedback
    assert (reward, terminated, truncated) == (0.0, False, False)
    assert info["step"] == 1 and reason in info["parse_error"]
    assert env.observation_space.contains(observation)
    observation.encode("utf-8")  # the transcript stays valid text whatever came in


def test_two_calls_in_one_action_is_an_error_and_counts_step():
    env = make_env()
    observation, reward, terminated, truncated, info = timed_step(
        env, "<search_query>Ada</search_query><search_query>Paris</search_query>"
    )
    assert "Error: Found 2 calls in one step" in observation
    assert info["step"] == 1 and info["tool"] is None
    assert "->" not in info["feedback"]  # neither search ran


def test_max_steps_malformed_actions_truncate_the_episode():
    env = make_env(max_steps=3)
    for step, action in enumerate([None, "", "<answer>London"], start=1):
        observation, reward, terminated, truncated, info = timed_step(env, action)
        assert info["step"] == step and reward == 0.0 and not terminated
        assert truncated == (step == 3)


def test_a_valid_call_after_malformed_ones_still_runs_and_scores():
    env = make_env()
    timed_step(env, b"bytes")
    timed_step(env, "<python>1</python>")
    observation, *_ = timed_step(env, "<search_query>Ada Lovelace</search_query>")
    assert "born in London" in observation
    _, reward, terminated, _, info = timed_step(env, "<answer>London</answer>")
    assert reward == 1.0 and terminated and info["step"] == 4


def test_a_megabyte_action_is_cut_to_the_action_limit_in_the_transcript():
    env = make_env(max_action_chars=1000)
    before, _ = env.reset(seed=0)
    observation, *_ = timed_step(env, "<answer>" + "x" * MEGABYTE + "</answer>")
    assert len(observation) - len(before) < 1000 + 200
    assert "characters long; the limit is 1000" in observation


def test_lone_surrogates_are_replaced_in_the_transcript_and_messages():
    env = make_env()
    observation, _, _, _, info = timed_step(env, "thinking \ud800 <answer>London</answer>")
    assert "\ud800" not in observation
    observation.encode("utf-8")
    for message in info["messages"]:
        message["content"].encode("utf-8")


@pytest.mark.parametrize(
    "action",
    ["<a>" * 21_845, "<answer>" * 8_192, "</answer>" * 3_640 + "<answer>" * 4_096],
    ids=["unknown tags", "unclosed answer tags", "closings before openings"],
)
def test_many_unclosed_tags_are_parsed_in_linear_time(action):
    # With a 64k action limit, a search that rescans the text from every tag takes many seconds.
    env = make_env(max_action_chars=1 << 16)
    observation, reward, *_ = timed_step(env, action)
    assert "Error: " in observation and reward == 0.0


# -- step = parse + apply ---------------------------------------------------------------

MIXED = [
    "<search_query>Ada Lovelace</search_query>",
    "no call",
    "<math_exp>1815 + 37</math_exp>",
    '{"name": "search", "arguments": {"query": "Paris"}}',
    "<answer>London</answer>",
]


def test_step_is_parse_action_then_apply():
    stepped, split = make_env(), make_env()
    for action in MIXED:
        parsed = split.parse_action(action)
        assert parsed == parse_action(action, TOOLS)
        assert split.apply(action, parsed) == stepped.step(action)


def test_apply_uses_a_tool_result_the_caller_computed_instead_of_running_the_tool():
    env = make_env(max_result_chars=12)
    action = "<search_query>Ada Lovelace</search_query>"
    observation, _, _, _, info = env.apply(
        action, env.parse_action(action), ToolResult("served in a batch, cut at the limit")
    )
    assert info["feedback"] == "\nAda Lovelace -> served in a \n"  # 12 characters
    assert observation.endswith(action + info["feedback"]) and info["tool"] == "search"
    assert env.tool("search") is TOOLS[0] and env.tool("calculator") is TOOLS[1]
    with pytest.raises(KeyError, match="lookup"):
        env.tool("lookup")


def test_apply_refuses_a_tool_result_for_an_answer_and_a_finished_episode():
    env = make_env()
    answer = "<answer>London</answer>"
    with pytest.raises(ValueError, match="FinalAnswer"):
        env.apply(answer, env.parse_action(answer), ToolResult("x"))
    assert env.apply(answer, env.parse_action(answer))[1] == 1.0
    with pytest.raises(RuntimeError, match="reset"):
        env.apply(answer, env.parse_action(answer))


def test_tool_call_many_defaults_to_one_call_at_a_time():
    calculator = Calculator()
    calls = [("2 + 3", TASK), ("1 / 0", TASK)]
    assert calculator.call_many(calls) == [calculator(argument, task) for argument, task in calls]

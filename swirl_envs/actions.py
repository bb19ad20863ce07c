"""Parse one action (untrusted model text) into a tool call, a final answer or an error.

Two formats are accepted:

- tags, as in the SWiRL paper: free reasoning, then ``<search_query>...</search_query>``,
  ``<math_exp>...</math_exp>`` or ``<answer>...</answer>``;
- an OpenAI-style JSON tool call at the end of the text:
  ``{"name": "search", "arguments": {"query": "..."}}`` (also the ``{"type": "function",
  "function": {...}}`` and ``{"tool_calls": [...]}`` shapes, arguments as an object or a
  JSON string). The final answer is the ``answer`` function.

Parsing never raises: anything malformed becomes a ``ParseError`` whose message is
shown to the agent.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from swirl_envs.tools.base import Tool, function_schema

ANSWER_TAG = "answer"
ANSWER_NAME = "answer"
ANSWER_ARGUMENT = "answer"
ANSWER_SCHEMA = function_schema(
    ANSWER_NAME, "Give the final answer to the question.", ANSWER_ARGUMENT, "The final answer."
)
_MAX_JSON_CANDIDATES = 32
_OPEN_TAG = re.compile(r"<([A-Za-z_][\w-]{0,40})>")
_CLOSE_TAG = re.compile(r"</([A-Za-z_][\w-]{0,40})>")
_FENCE = re.compile(r"\s*```\s*$")


@dataclass(frozen=True)
class ToolCall:
    """A call of the tool ``name`` with its string ``argument`` (already stripped)."""

    name: str
    argument: str


@dataclass(frozen=True)
class FinalAnswer:
    """The agent's final answer."""

    text: str


@dataclass(frozen=True)
class ParseError:
    """Why an action could not be understood; shown to the agent."""

    message: str


Action = ToolCall | FinalAnswer | ParseError


def sanitize_action(text: str, max_chars: int) -> str:
    """Return ``text`` as it is recorded in the transcript: valid UTF-8, at most ``max_chars``."""
    text = text.encode("utf-8", "replace").decode("utf-8")
    return text[:max_chars]


def parse_action(text: Any, tools: Sequence[Tool], max_chars: int = 8192) -> Action:
    """Parse one action against the available ``tools`` (the answer is always available)."""
    if not isinstance(text, str):
        return ParseError(f"An action must be text, not {type(text).__name__}.")
    if len(text) > max_chars:
        return ParseError(f"The action is {len(text)} characters long; the limit is {max_chars}.")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        return ParseError(f"The action contains invalid Unicode at position {error.start}.")
    if not text.strip():
        return ParseError(f"The action is empty. {_usage(tools)}")
    tag_result = _parse_tags(text, tools)
    if tag_result is not None:
        return tag_result
    json_result = _parse_json_call(text, tools)
    if json_result is not None:
        return json_result
    unknown = _unknown_tag(text)
    if unknown:
        return ParseError(f"Unknown tool <{unknown}>. {_usage(tools)}")
    return ParseError(f"No tool call or answer found. {_usage(tools)}")


def _usage(tools: Sequence[Tool]) -> str:
    calls = [f"<{tool.tag}>...</{tool.tag}>" for tool in tools]
    calls.append(f"<{ANSWER_TAG}>...</{ANSWER_TAG}>")
    return "End each step with exactly one of: " + ", ".join(calls) + "."


def _parse_tags(text: str, tools: Sequence[Tool]) -> Action | None:
    names = {tool.tag: tool.name for tool in tools}
    names[ANSWER_TAG] = ANSWER_NAME
    alternation = "|".join(re.escape(tag) for tag in names)
    # One pass over the known tags (a lazy <tag>(.*?)</tag> search rescans the rest of the
    # text from every unclosed tag: quadratic). A well-formed action is open/close pairs.
    tags = list(re.finditer(rf"<(/?)({alternation})>", text))
    if not tags:
        return None
    opens, closes = tags[0::2], tags[1::2]
    paired = len(opens) == len(closes) and all(
        not opening.group(1) and closing.group(1) and opening.group(2) == closing.group(2)
        for opening, closing in zip(opens, closes, strict=True)
    )
    if not paired:
        return ParseError(f"Unclosed or nested tag. {_usage(tools)}")
    if len(opens) > 1:
        return ParseError(f"Found {len(opens)} calls in one step; a step ends in exactly one.")
    tag, argument = opens[0].group(2), text[opens[0].end() : closes[0].start()].strip()
    return _make_action(names[tag], argument, tools)


def _unknown_tag(text: str) -> str | None:
    """The first tag name that is opened and closed later in the text, found in linear time."""
    last_close = {match.group(1): match.start() for match in _CLOSE_TAG.finditer(text)}
    for match in _OPEN_TAG.finditer(text):
        if last_close.get(match.group(1), -1) > match.start():
            return match.group(1)
    return None


def _make_action(name: str, argument: str, tools: Sequence[Tool]) -> Action:
    if not argument:
        return ParseError(f"The {name} call is empty.")
    if name == ANSWER_NAME:
        return FinalAnswer(argument)
    return ToolCall(name, argument)


def _parse_json_call(text: str, tools: Sequence[Tool]) -> Action | None:
    payload = _trailing_json_object(text)
    if payload is None:
        return None
    if isinstance(payload.get("tool_calls"), list):
        calls = payload["tool_calls"]
        if len(calls) != 1:
            return ParseError(f"Found {len(calls)} tool calls; a step ends in exactly one.")
        payload = calls[0] if isinstance(calls[0], dict) else {}
    if isinstance(payload.get("function"), dict):
        payload = payload["function"]
    name, arguments = payload.get("name"), payload.get("arguments", {})
    if not isinstance(name, str):
        return None
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except (ValueError, RecursionError):
            return ParseError(f"The arguments of {name!r} are not valid JSON.")
    by_name = {tool.name: tool.argument for tool in tools}
    by_name[ANSWER_NAME] = ANSWER_ARGUMENT
    if name not in by_name:
        return ParseError(f"Unknown tool {name!r}; available: {', '.join(by_name)}.")
    if not isinstance(arguments, dict) or by_name[name] not in arguments:
        return ParseError(f"The call of {name!r} needs the argument {by_name[name]!r}.")
    value = arguments[by_name[name]]
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return ParseError(f"The argument {by_name[name]!r} must be a string.")
    return _make_action(name, str(value).strip(), tools)


def _trailing_json_object(text: str) -> dict | None:
    """The JSON object that ends the text (code fences allowed), if there is one."""
    body = _FENCE.sub("", text).rstrip()
    if not body.endswith("}"):
        return None
    decoder = json.JSONDecoder()
    # Only the outermost object can end where the text ends, so scan starts from the right.
    starts = [match.start() for match in re.finditer(r"\{", body)]
    for start in reversed(starts[-_MAX_JSON_CANDIDATES:]):
        try:
            value, end = decoder.raw_decode(body, start)
        except (ValueError, RecursionError):
            continue
        if end == len(body) and isinstance(value, dict):
            return value
    return None

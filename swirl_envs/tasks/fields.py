"""Typed access to the fields of one untrusted dataset record, and the gold-path action texts.

Every accessor raises ``RecordError`` with a sentence a user can act on ("missing
key 'answer'", "context item 3 must be a pair [title, text], got a string");
the file reader adds the file name and line.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, TypeVar

from swirl_envs.actions import ANSWER_TAG
from swirl_envs.task import Passage
from swirl_envs.tasks.files import RecordError, json_type
from swirl_envs.tools.search import SearchTool

T = TypeVar("T")
_TYPE_NAMES = {
    str: "a string",
    list: "a list",
    dict: "an object",
    bool: "a boolean",
    int: "an integer",
}


def tag_action(tag: str, text: str) -> str:
    """An action that calls ``tag`` on ``text``: ``<tag>text</tag>``."""
    return f"<{tag}>{text}</{tag}>"


def search_action(query: str) -> str:
    """A search call, as the gold path writes it."""
    return tag_action(SearchTool.tag, query)


def answer_action(answer: str) -> str:
    """A final answer, as the gold path writes it."""
    return tag_action(ANSWER_TAG, answer)


def as_object(record: Any, what: str = "a record") -> dict[str, Any]:
    """``record`` itself if it is a JSON object."""
    if not isinstance(record, dict):
        raise RecordError(f"{what} must be a JSON object, got {json_type(record)}.")
    return record


def field(record: Any, key: str, kind: type[T], what: str = "") -> T:
    """``record[key]``, which must exist and be of ``kind``.

    Args:
        record: The record (or a nested object) to read.
        key: The key.
        kind: Expected Python type (``str``, ``list``, ``dict``, ``bool``, ``int``).
        what: How to name the key in errors, when it is nested (``"paragraphs[3].title"``).
    """
    name = what or key
    record = as_object(record, f"the object holding {name!r}")
    if key not in record:
        raise RecordError(f"missing key {name!r}.")
    value = record[key]
    # bool is an int in Python; a JSON true is not an index.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise RecordError(
            f"{name!r} must be {_TYPE_NAMES.get(kind, kind.__name__)}, got {json_type(value)}."
        )
    return value


def optional_field(
    record: dict[str, Any], key: str, kind: type[T], default: T, what: str = ""
) -> T:
    """``record[key]`` when present and not null, else ``default``."""
    if record.get(key) is None:
        return default
    return field(record, key, kind, what)


def first_field(record: Any, keys: Sequence[str], kind: type[T]) -> T:
    """The first of ``keys`` present in ``record`` (datasets spell ids ``_id`` or ``id``)."""
    record = as_object(record)
    for key in keys:
        if key in record:
            return field(record, key, kind)
    raise RecordError(f"missing key {' or '.join(repr(key) for key in keys)}.")


def string_list(record: dict[str, Any], key: str, *, allow_empty: bool = False) -> list[str]:
    """``record[key]`` as a list of strings."""
    values = field(record, key, list)
    if not values and not allow_empty:
        raise RecordError(f"{key!r} is empty.")
    for position, value in enumerate(values):
        if not isinstance(value, str):
            raise RecordError(f"{key}[{position}] must be a string, got {json_type(value)}.")
    return values


def passage_from_pair(pair: Any, what: str, passage_id: str) -> Passage:
    """A passage from a ``[title, text]`` pair, where text is a string or a list of sentences.

    HotPotQA writes ``[title, [sentence, ...]]`` (sentences after the first keep
    their leading space, so they are joined without a separator); BeerQA writes
    ``[title, paragraph]``. Titles are interned: the same article recurs across
    questions, and a full split holds a million of them.
    """
    if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str)):
        raise RecordError(f"{what} must be a pair [title, text], got {_describe(pair)}.")
    title, body = pair
    if isinstance(body, list) and all(isinstance(sentence, str) for sentence in body):
        body = "".join(body)
    if not isinstance(body, str):
        raise RecordError(
            f"{what} text must be a string or a list of strings, got {json_type(body)}."
        )
    return Passage(title=sys.intern(title), text=body.strip(), id=passage_id)


def _describe(value: Any) -> str:
    if isinstance(value, list):
        return f"a list of {len(value)} items"
    return json_type(value)


def unique_in_order(values: Sequence[str]) -> tuple[str, ...]:
    """``values`` without repeats, first occurrence kept."""
    return tuple(dict.fromkeys(values))

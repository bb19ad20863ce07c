"""Read a JSON array one element at a time, so memory is bounded by one element, not the file.

HotPotQA's train file is one 540 MB JSON array on a single line; ``json.load`` holds
the whole text (as wide as its widest character, so up to 4 bytes a character) and
every record's objects at once: several GB. ``iter_json_array`` reads the text in
chunks through the handle's incremental UTF-8 decoder (a character split across two
chunks of bytes is never seen half) and decodes each element with the standard
library's ``json`` scanner, so each element is exactly what ``json.load`` gives.
Errors name the source, the line and column, and the element's 1-based number.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, TextIO

CHUNK_CHARS = 1 << 20
"""Characters read at a time; an element longer than this is read in growing chunks."""

_SPACE = " \t\n\r"  # JSON's whitespace (str.isspace would accept more than json does)
_DECODER = json.JSONDecoder()
# A decode error this close to the end of the text read so far may only be the text
# running out (an escape like "\ud83d" cut short); more text decides.
_TAIL = 12


class JSONStreamError(ValueError):
    """The text is not the JSON expected; the message names the source, line and element."""


class NotAnArrayError(JSONStreamError):
    """The text is valid so far but holds no array where one was expected; nothing was yielded."""


def iter_json_array(
    handle: TextIO, name: str, *, key: str | None = None, chunk_chars: int = CHUNK_CHARS
) -> Iterator[Any]:
    """Yield the elements of the JSON array that is the whole text of ``handle``.

    Args:
        handle: A text handle at the start of the document.
        name: How errors name the source (the file's path).
        key: Also accept an object whose ``key`` member is the array (BeerQA's
            ``{"version": ..., "data": [...]}``); its other members are read and dropped.
        chunk_chars: Characters read at a time (tests use tiny chunks).

    Raises:
        NotAnArrayError: The document is neither (raised before any element is yielded).
        JSONStreamError: The text is not valid JSON, or more follows the document.
    """
    reader = _Reader(handle, name, chunk_chars)
    start = reader.peek()
    if start == "[":
        yield from reader.array()
    elif start == "{" and key is not None:
        yield from _member_array(reader, key)
    else:
        expected = "a JSON array" + (f" or an object with a {key!r} array" if key else "")
        found = "nothing" if start == "" else f"{start!r}"
        raise NotAnArrayError(f"{name}: expected {expected}, found {found}.")
    if reader.peek() != "":
        raise reader.error("more text follows the JSON document")


def _member_array(reader: _Reader, key: str) -> Iterator[Any]:
    """The elements of the ``key`` array of the object at the reader, the other members dropped."""
    reader.take("{")
    found, members = False, 0
    while reader.peek() != "}":
        if members:
            reader.take(",")
        member = reader.value("a member name")
        if not isinstance(member, str):
            raise reader.error("expected a member name in double quotes")
        reader.take(":")
        if member == key and reader.peek() == "[" and not found:
            found = True
            yield from reader.array()
        else:
            reader.value(f"the value of {member!r}")
        members += 1
    reader.take("}")
    if not found:
        raise NotAnArrayError(f"{reader.name}: the JSON object has no {key!r} array.")


class _Reader:
    """A text handle read in chunks, with a cursor that decodes one JSON value at a time."""

    def __init__(self, handle: TextIO, name: str, chunk_chars: int):
        self.name = name
        self.count = 0  # elements read from the array
        self._handle = handle
        self._chunk = chunk_chars
        self._text = ""
        self._pos = 0
        self._lines_before = 0  # newlines in the text already dropped
        self._column_before = 0  # characters since the last dropped newline

    def _read(self, at_least: int) -> bool:
        """Drop the consumed text and append at least ``at_least`` characters; False at the end.

        At the end nothing is dropped, so positions in the text stay valid for errors.
        """
        more = self._handle.read(max(at_least, self._chunk))
        if not more:
            return False
        consumed = self._text[: self._pos]
        newlines = consumed.count("\n")
        if newlines:
            self._lines_before += newlines
            self._column_before = len(consumed) - consumed.rfind("\n") - 1
        else:
            self._column_before += len(consumed)
        self._text = self._text[self._pos :] + more
        self._pos = 0
        return True

    def peek(self) -> str:
        """The next character after whitespace (consumed), or ``""`` at the end of the text."""
        while True:
            text, pos = self._text, self._pos
            while pos < len(text) and text[pos] in _SPACE:
                pos += 1
            self._pos = pos
            if pos < len(text):
                return text[pos]
            if not self._read(0):
                return ""

    def take(self, char: str) -> None:
        """Consume ``char``, the next character after whitespace."""
        found = self.peek()
        if found != char:
            raise self.error(f"expected {char!r}, found {_describe(found)}")
        self._pos += 1

    def value(self, what: str, *, record: bool = False) -> Any:
        """Decode the JSON value at the cursor (after whitespace); ``record``: an array element."""
        if self.peek() == "":
            raise self.error(f"the text ends before {what}", record=record)
        while True:
            try:
                value, end = _DECODER.raw_decode(self._text, self._pos)
            except json.JSONDecodeError as error:
                near_end = error.pos >= len(self._text) - _TAIL
                # Reading as much again as the value's text so far keeps long values linear.
                if (near_end or error.msg.startswith("Unterminated")) and self._read(
                    len(self._text) - self._pos
                ):
                    continue
                raise self.error(
                    f"not valid JSON ({error.msg})", error.pos, record=record
                ) from None
            # A value ending near the end of the text read so far may go on ("1." + "5"):
            # read on and decode it again.
            if end <= len(self._text) - _TAIL or not self._read(0):
                self._pos = end
                return value

    def array(self) -> Iterator[Any]:
        """Yield the elements of the array at the cursor, then consume its ``]``."""
        self.take("[")
        if self.peek() == "]":
            self._pos += 1
            return
        while True:
            yield self.value("the record", record=True)
            self.count += 1
            found = self.peek()
            if found not in (",", "]"):
                raise self.error(f"expected ',' or ']' after a record, found {_describe(found)}")
            self._pos += 1
            if found == "]":
                return

    def error(
        self, message: str, pos: int | None = None, *, record: bool = False
    ) -> JSONStreamError:
        """An error at ``pos`` (default: the cursor) naming the line, column and record."""
        pos = self._pos if pos is None else pos
        last_newline = self._text.rfind("\n", 0, pos)
        line = self._lines_before + self._text.count("\n", 0, pos) + 1
        column = pos - last_newline if last_newline >= 0 else self._column_before + pos + 1
        if record:
            where = f"record {self.count + 1}, "
        else:
            where = f"after record {self.count}, " if self.count else ""
        return JSONStreamError(f"{self.name}, {where}line {line} column {column}: {message}.")


def _describe(char: str) -> str:
    return "the end of the text" if char == "" else repr(char)

"""The Task record: the one seam between a data source and an environment.

Every task source (generated or a real dataset) yields ``Task`` objects; an
environment is a list of tasks plus tools plus a scorer. A new dataset is a new
module in ``swirl_envs.tasks`` that returns ``list[Task]``, nothing else.
``swirl_envs.check_tasks(env)`` replays every task's gold path through its env.

Import it from the package: ``from swirl_envs import Task, Passage``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any


# slots: a full train split holds about a million passages; a per-object __dict__ would be
# about a tenth of their memory (benchmarks/loader_memory.py).
@dataclass(frozen=True, slots=True, init=False, repr=False)
class Passage:
    """One retrievable paragraph: a title and its text.

    The text is read as ``passage.text``. It is kept as UTF-8 bytes when that is smaller
    than Python's string: one character beyond Latin-1 (an en dash, say) makes a ``str``
    take 2 bytes a character, and a third of HotPotQA's paragraphs have one, which is most
    of a full split's memory (docs/datasets.md).
    """

    title: str
    stored: str | bytes
    id: str

    def __init__(self, title: str, text: str, id: str = ""):
        object.__setattr__(self, "title", title)
        object.__setattr__(self, "stored", _compact(text))
        object.__setattr__(self, "id", id)

    @property
    def text(self) -> str:
        """The paragraph's text."""
        stored = self.stored
        return stored if isinstance(stored, str) else stored.decode("utf-8")

    def __repr__(self) -> str:
        return f"Passage(title={self.title!r}, text={self.text!r}, id={self.id!r})"


def _compact(text: str) -> str | bytes:
    """``text`` as a ``str``, or as UTF-8 bytes where those take less memory."""
    if text.isascii():
        return text
    encoded = text.encode("utf-8")
    return encoded if sys.getsizeof(encoded) < sys.getsizeof(text) else text


@dataclass(frozen=True, slots=True)
class Task:
    """One question with everything needed to act on it and score it.

    Attributes:
        id: Stable identifier (the dataset's own id where it has one).
        question: The question shown to the agent.
        answers: The gold answer first, then accepted aliases.
        gold_path: The actions an expert takes, as action text (tags), ending in
            the answer. Replaying it through the env scores 1.
        passages: The question's own paragraphs (the distractor-setting corpus);
            empty for tasks without search.
        supporting: Titles (or ids) of the passages the answer needs.
        answerable: False for questions the dataset marks unanswerable.
        meta: Source-specific extras (question type, level, template keys, ...).
        unique_sound_path: True when the gold path's steps are the only sound
            steps: a tool call is sound exactly when it does a gold step that is
            not done yet and whose inputs are known (the same calculation, a
            search for the same entity). A programmatic process judge may then
            grade steps against the gold path. Leave it False when other
            solutions are as good (most real datasets).
    """

    id: str
    question: str
    answers: tuple[str, ...]
    gold_path: tuple[str, ...] = ()
    passages: tuple[Passage, ...] = ()
    supporting: tuple[str, ...] = ()
    answerable: bool = True
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    unique_sound_path: bool = False

    @property
    def answer(self) -> str:
        """The gold answer (the first of ``answers``)."""
        return self.answers[0] if self.answers else ""

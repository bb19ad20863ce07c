"""The Task record: the one seam between a data source and an environment.

Every task source (generated or a real dataset) yields ``Task`` objects; an
environment is a list of tasks plus tools plus a scorer. A new dataset is a new
module in ``swirl_envs.tasks`` that returns ``list[Task]``, nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Passage:
    """One retrievable paragraph: a title and its text."""

    title: str
    text: str
    id: str = ""


@dataclass(frozen=True)
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
    """

    id: str
    question: str
    answers: tuple[str, ...]
    gold_path: tuple[str, ...] = ()
    passages: tuple[Passage, ...] = ()
    supporting: tuple[str, ...] = ()
    answerable: bool = True
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def answer(self) -> str:
        """The gold answer (the first of ``answers``)."""
        return self.answers[0] if self.answers else ""

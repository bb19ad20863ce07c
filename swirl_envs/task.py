"""The Task record: the one seam between a data source and an environment.

Every task source (generated or a real dataset) yields ``Task`` objects; an
environment is a list of tasks plus tools plus a scorer. A new dataset is a new
module in ``swirl_envs.tasks`` that returns ``list[Task]``, nothing else.
``swirl_envs.check_tasks(env)`` replays every task's gold path through its env.

Import it from the package: ``from swirl_envs import Task, Passage``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


# slots: a full train split holds about a million passages; a per-object __dict__ would be
# about a tenth of their memory (benchmarks/loader_memory.py).
@dataclass(frozen=True, slots=True)
class Passage:
    """One retrievable paragraph: a title and its text."""

    title: str
    text: str
    id: str = ""


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

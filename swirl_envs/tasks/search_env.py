"""What the search benchmarks (HotPotQA, MuSiQue, BeerQA, CofCA) share: the env and the gold path.

A dataset module subclasses ``SearchQAEnv`` with its loader and default split;
everything else (the search tool and its corpus, the prompt, EM scoring, the
judge hook, the step budget) is the same for all four; a dataset whose official
script computes F1 differently sets ``metric`` (MuSiQue does).

A gold path searches for each supporting passage and then answers. Its query for
a passage is the passage's title (the search tool ranks an exact title first)
when no other paragraph of the question has that title; titles repeat in MuSiQue
and occasionally in BeerQA, and then the query is the first of the dataset's
candidates (title plus sub-question, ...) that the search tool ranks on that
passage first.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, ClassVar

from swirl_envs.env import AnswerJudge, SwirlEnv
from swirl_envs.prompts import SEARCH_PROMPT
from swirl_envs.scoring import Scorer, qa_scores
from swirl_envs.task import Passage, Task
from swirl_envs.tasks.fields import answer_action, search_action
from swirl_envs.tasks.files import OnError
from swirl_envs.tools.search import SearchTool, make_search_tool


class SearchQAEnv(SwirlEnv):
    """Questions answered with the search tool; reward = exact match after normalisation.

    F1, precision and recall are in the final step's ``info``; a ``judge`` (e.g. an
    LLM judge, as the paper used) replaces EM as the reward when given.

    Args:
        data_path: The dataset file or its folder; ``None`` looks in the data folder,
            then on the Hugging Face Hub (see ``swirl_envs.tasks.files``).
        split: Which split; each dataset has its own default.
        search: ``"distractor"`` (each question's own paragraphs), ``"open"`` (every
            paragraph of the loaded split in one index), or the path of a corpus
            (JSONL of ``title``/``text``, or a saved index directory).
        k: Passages returned per search.
        max_chars: Characters shown per passage.
        max_steps: Step budget, searches and the answer together.
        system_prompt: Overrides ``SEARCH_PROMPT`` (``{max_steps}`` is filled in).
        judge: Optional answer judge ``(question, gold answers, prediction) -> score``.
        on_error: ``"raise"`` (default) or ``"skip"`` for malformed records.
        render_mode: ``"ansi"``, ``"human"`` or None.
        **kwargs: Passed on to ``SwirlEnv`` (``max_action_chars``, ``max_result_chars``).
    """

    default_split: ClassVar[str]
    metric: ClassVar[Scorer] = staticmethod(qa_scores)
    """The dataset's official EM/F1; HotPotQA's rules unless the dataset's own script differs."""

    def __init__(
        self,
        data_path: str | os.PathLike[str] | None = None,
        *,
        split: str | None = None,
        search: str = "distractor",
        k: int = 1,
        max_chars: int = 500,
        max_steps: int = 5,
        system_prompt: str | None = None,
        judge: AnswerJudge | None = None,
        on_error: OnError = "raise",
        render_mode: str | None = None,
        **kwargs: Any,
    ):
        self.split = self.default_split if split is None else split
        tasks = self.load(data_path, self.split, on_error)
        super().__init__(
            tasks,
            [make_search_tool(search, tasks, k=k, max_chars=max_chars)],
            system_prompt=SEARCH_PROMPT if system_prompt is None else system_prompt,
            max_steps=max_steps,
            scorer=self.metric,
            judge=judge,
            render_mode=render_mode,
            **kwargs,
        )

    def load(
        self, data_path: str | os.PathLike[str] | None, split: str, on_error: OnError
    ) -> list[Task]:
        """Read the dataset's tasks; each dataset module implements this."""
        raise NotImplementedError


# One task's index at a time: gold queries are chosen task by task while loading.
_GOLD_SEARCH = SearchTool("distractor", k=1, cache_size=1)


def gold_query(
    passage: Passage, passages: Sequence[Passage], candidates: Sequence[str]
) -> tuple[str, bool]:
    """The query that finds ``passage`` among ``passages``, and whether it ranks it first.

    Args:
        passage: The supporting passage to find.
        passages: The question's own paragraphs (the distractor corpus).
        candidates: Queries to try, in order of preference, when the title is not unique.

    Returns:
        The title if no other paragraph has it; otherwise the first candidate that
        ranks ``passage`` first, or the last candidate (and False) if none does.
    """
    if sum(other.title == passage.title for other in passages) == 1:
        return passage.title, True
    probe = Task(id="", question="", answers=(), passages=tuple(passages))
    for query in candidates:
        if [hit.passage for hit in _GOLD_SEARCH.rank(query, probe)] == [passage]:
            return query, True
    return candidates[-1], False


def gold_search_path(
    targets: Sequence[tuple[Passage, Sequence[str]]], passages: Sequence[Passage], answer: str
) -> tuple[tuple[str, ...], dict[str, Any]]:
    """A gold path (one search per target passage, then the answer) and what it targets.

    Args:
        targets: Each supporting passage with its candidate queries (see ``gold_query``).
        passages: The question's own paragraphs.
        answer: The final answer.

    Returns:
        The actions, and ``Task.meta`` entries: ``gold_targets`` (the passage id each
        search is for) and ``gold_queries_top1`` (whether every query ranks its
        passage first among the question's paragraphs).
    """
    actions, all_first = [], True
    for passage, candidates in targets:
        query, first = gold_query(passage, passages, candidates)
        actions.append(search_action(query))
        all_first &= first
    meta = {
        "gold_targets": tuple(passage.id for passage, _ in targets),
        "gold_queries_top1": all_first,
    }
    return (*actions, answer_action(answer)), meta


def supporting_passages(task: Task) -> list[Passage]:
    """The passages ``task.supporting`` names, by passage id or else by title (first match)."""
    by_id = {passage.id: passage for passage in task.passages}
    by_title = {passage.title: passage for passage in reversed(task.passages)}
    found = (by_id.get(name) or by_title.get(name) for name in task.supporting)
    return [passage for passage in found if passage is not None]

"""BeerQA (Qi et al., 2021): open-domain questions of one, two or more hops, answered with search.

The v1.0 files from https://beerqa.github.io (``beerqa_train_v1.0.json``,
``beerqa_dev_v1.0.json``) are one JSON object::

    {"version": "1.0", "split": "dev",
     "data": [{"id": "...", "src": "hotpotqa", "question": "...", "answers": ["..."],
               "context": [["Title", "paragraph text"], ...]}, ...]}

``src`` is ``"squad"`` (one hop), ``"hotpotqa"`` (two) or ``"beerqa"`` (the 3+ hop
challenge set, test only); the official evaluation (``utils/eval_beerqa.py`` in
github.com/beerqa/IRRR) reads ``id``, ``src`` and ``answers`` and takes the best EM
and F1 over ``answers``, as ``qa_scores`` does. ``context`` holds the question's
gold paragraphs (all of them supporting, ``Task.supporting`` lists their ids), so
in the distractor setting the search tool sees only those; the open setting pools
every question's paragraphs. The gold path searches each context paragraph by its
title (by title and question when two gold paragraphs share a title, which
happens for a few hundred questions), then answers with the first of ``answers``. The test file
(``beerqa_test_questions_v1.0.json``) has no answers or context and is not loadable.
BeerQA is not on the Hugging Face Hub, so a local file is required.
"""

from __future__ import annotations

import os
from typing import Any

from swirl_envs.task import Task
from swirl_envs.tasks.fields import as_object, field, passage_from_pair, string_list
from swirl_envs.tasks.files import DatasetFiles, OnError, RecordError, load_tasks
from swirl_envs.tasks.search_env import SearchQAEnv, gold_search_path

BEERQA_FILES = DatasetFiles(
    name="BeerQA",
    folder="beerqa",
    files={"train": "beerqa_train_v1.0.json", "dev": "beerqa_dev_v1.0.json"},
    url="https://beerqa.github.io (or github.com/beerqa/IRRR, scripts/download_qa_data.sh)",
)


def beerqa_task(record: Any, index: int) -> Task:
    """Build a task from one BeerQA record."""
    record = as_object(record)
    task_id = field(record, "id", str)
    answers = string_list(record, "answers")
    context = field(record, "context", list)
    if not context:
        raise RecordError("'context' is empty.")
    passages = tuple(
        passage_from_pair(pair, f"context item {position + 1}", f"{task_id}#{position}")
        for position, pair in enumerate(context)
    )
    question = field(record, "question", str).strip()
    targets = [
        (passage, (f"{passage.title} {question}", f"{passage.title} {answers[0]}"))
        for passage in passages
    ]
    gold_path, gold_meta = gold_search_path(targets, passages, answers[0])
    return Task(
        id=task_id,
        question=question,
        answers=tuple(answers),
        gold_path=gold_path,
        passages=passages,
        supporting=tuple(passage.id for passage in passages),
        meta={"src": record.get("src"), **gold_meta},
    )


def load_beerqa(
    data_path: str | os.PathLike[str] | None = None,
    *,
    split: str = "dev",
    on_error: OnError = "raise",
) -> list[Task]:
    """Load BeerQA tasks.

    Args:
        data_path: ``beerqa_{train,dev}_v1.0.json`` or its folder; ``None`` looks in the
            data folder (BeerQA is not on the Hub).
        split: ``"train"`` or ``"dev"``.
        on_error: ``"raise"`` or ``"skip"`` for malformed records (see ``load_tasks``).
    """
    return load_tasks(
        BEERQA_FILES, beerqa_task, data_path=data_path, split=split, on_error=on_error
    )


class BeerQAEnv(SearchQAEnv):
    """``swirl/BeerQA-v0``: BeerQA questions with the search tool; reward = exact match.

    See ``SearchQAEnv`` for the arguments; ``split`` is ``"train"`` or ``"dev"`` (default).
    """

    default_split = "dev"
    eval_split = "dev"

    def load(
        self, data_path: str | os.PathLike[str] | None, split: str, on_error: OnError
    ) -> list[Task]:
        """Load BeerQA (see ``load_beerqa``)."""
        return load_beerqa(data_path, split=split, on_error=on_error)

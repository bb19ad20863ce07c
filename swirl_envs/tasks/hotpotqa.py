"""HotPotQA (Yang et al., 2018): two-hop questions over Wikipedia paragraphs, answered with search.

The original files (``hotpot_train_v1.1.json``, ``hotpot_dev_distractor_v1.json``)
are JSON arrays of records::

    {"_id": "5a8b57f25542995d1e6f1371", "question": "...", "answer": "yes",
     "supporting_facts": [["Scott Derrickson", 0], ["Ed Wood", 0]],
     "context": [["Scott Derrickson", ["Scott Derrickson is ...", " He lives ..."]], ...],
     "type": "comparison", "level": "hard"}

JSON Lines with the same records, and extra keys, are read too. Each context pair
becomes a passage (the sentences joined); the supporting titles are the unique
titles of ``supporting_facts`` in order; the gold path searches each supporting
title (the search tool ranks an exact title first) and then answers. (Titles are
unique within a HotPotQA context; were one repeated, the query would add the
question, see ``gold_search_path``.)
"""

from __future__ import annotations

import os
import sys
from typing import Any

from swirl_envs.task import Task
from swirl_envs.tasks.fields import field, first_field, passage_from_pair, unique_in_order
from swirl_envs.tasks.files import DatasetFiles, HubDataset, OnError, RecordError, load_tasks
from swirl_envs.tasks.search_env import SearchQAEnv, gold_search_path


def hub_row_to_record(row: dict[str, Any]) -> dict[str, Any]:
    """Turn a row of the Hub copy (``hotpotqa/hotpot_qa``, columns) into an original record."""
    facts, context = row["supporting_facts"], row["context"]
    return {
        "_id": row["id"],
        "question": row["question"],
        "answer": row["answer"],
        "type": row.get("type"),
        "level": row.get("level"),
        "supporting_facts": [
            list(pair) for pair in zip(facts["title"], facts["sent_id"], strict=True)
        ],
        "context": [
            list(pair) for pair in zip(context["title"], context["sentences"], strict=True)
        ],
    }


HOTPOTQA_FILES = DatasetFiles(
    name="HotPotQA",
    folder="hotpotqa",
    files={"train": "hotpot_train_v1.1.json", "dev": "hotpot_dev_distractor_v1.json"},
    url="http://curtis.ml.cmu.edu/datasets/hotpot/ (see https://hotpotqa.github.io)",
    hub=HubDataset(
        "hotpotqa/hotpot_qa",
        config="distractor",
        splits={"train": "train", "dev": "validation"},
        adapt=hub_row_to_record,
    ),
)


def hotpotqa_task(record: Any, index: int) -> Task:
    """Build a task from one HotPotQA record."""
    task_id = first_field(record, ("_id", "id"), str)
    question = field(record, "question", str)
    answer = field(record, "answer", str)
    context = field(record, "context", list)
    passages = tuple(
        passage_from_pair(pair, f"context item {position + 1}", f"{task_id}#{position}")
        for position, pair in enumerate(context)
    )
    supporting = supporting_titles(field(record, "supporting_facts", list))
    by_title = {passage.title: passage for passage in reversed(passages)}  # first of each title
    missing = [title for title in supporting if title not in by_title]
    if missing:
        raise RecordError(f"supporting title {missing[0]!r} is not a title in 'context'.")
    targets = [(by_title[title], (f"{title} {question}",)) for title in supporting]
    gold_path, gold_meta = gold_search_path(targets, passages, answer)
    return Task(
        id=task_id,
        question=question.strip(),
        answers=(answer,),
        gold_path=gold_path,
        passages=passages,
        supporting=supporting,
        meta={
            "type": _intern(record.get("type")),
            "level": _intern(record.get("level")),
            # The titles are the passages' own (interned) strings, not the record's copies.
            "supporting_facts": [
                [by_title[title].title, sentence] for title, sentence in record["supporting_facts"]
            ],
            **gold_meta,
        },
    )


def _intern(value: Any) -> Any:
    """One shared copy of a repeated string ("bridge", "hard") instead of one per record."""
    return sys.intern(value) if isinstance(value, str) else value


def supporting_titles(facts: list[Any]) -> tuple[str, ...]:
    """The unique titles of ``[title, sentence index]`` supporting facts, in order."""
    titles = []
    for position, fact in enumerate(facts):
        if not (isinstance(fact, list) and len(fact) == 2 and isinstance(fact[0], str)):
            raise RecordError(
                f"supporting_facts item {position + 1} must be [title, sentence index]."
            )
        titles.append(fact[0])
    if not titles:
        raise RecordError("'supporting_facts' is empty.")
    return unique_in_order(titles)


def load_hotpotqa(
    data_path: str | os.PathLike[str] | None = None,
    *,
    split: str = "dev",
    on_error: OnError = "raise",
) -> list[Task]:
    """Load HotPotQA tasks (distractor setting: each question's ten paragraphs).

    Args:
        data_path: The split's JSON (or JSON Lines) file or its folder; ``None`` looks in
            the data folder, then on the Hugging Face Hub (``hotpotqa/hotpot_qa``).
        split: ``"train"`` or ``"dev"`` (the test set has no answers).
        on_error: ``"raise"`` or ``"skip"`` for malformed records (see ``load_tasks``).
    """
    return load_tasks(
        HOTPOTQA_FILES, hotpotqa_task, data_path=data_path, split=split, on_error=on_error
    )


class HotPotQAEnv(SearchQAEnv):
    """``swirl/HotPotQA-v0``: HotPotQA questions with the search tool; reward = exact match.

    See ``SearchQAEnv`` for the arguments; ``split`` is ``"train"`` or ``"dev"`` (default).
    """

    default_split = "dev"
    eval_split = "dev"

    def load(
        self, data_path: str | os.PathLike[str] | None, split: str, on_error: OnError
    ) -> list[Task]:
        """Load HotPotQA (see ``load_hotpotqa``)."""
        return load_hotpotqa(data_path, split=split, on_error=on_error)

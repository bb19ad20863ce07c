"""CofCA (Wu et al., 2024/ICLR 2025): counterfactual multi-hop questions, answered with search.

CofCA rewrites the Wikipedia passages of HotPotQA, 2WikiMultihopQA and MuSiQue
questions with counterfactual facts, so a model must read the passages instead
of recalling Wikipedia; it adds sub-questions for each hop. Its data is published
at https://anonymous.4open.science/r/LLM_inherent_multi_step_eval-3818/ without a
documented schema, and could not be inspected while this loader was written. The
SWiRL paper's list of CofCA evaluation ids (its Appendix G) is HotPotQA ids, so the
records are read as HotPotQA-style records, with these tolerances:

- the file is a JSON array, an object with a ``"data"`` array, or JSON Lines;
- the id is ``_id`` or ``id`` (ids may repeat: several rewrites of one question);
- the answer is ``answer`` (a string or a list of accepted strings) or ``answers``;
- ``context`` (or ``paragraphs``) is a list of ``[title, sentences or text]`` pairs,
  or of objects with ``title`` and one of ``text``, ``paragraph_text``, ``sentences``;
- ``supporting_facts`` (``[title, sentence index]`` pairs) is optional; without it,
  every context passage is supporting (the context is the rewritten gold evidence);
- sub-questions, if given as ``sub_questions`` or ``question_decomposition`` (objects
  with ``question`` and ``answer``), are kept in ``Task.meta["sub_questions"]``.

Anything else is a ``DataFormatError`` naming the file, record and key. If the
published files differ, convert them to this shape (docs/datasets.md).
"""

from __future__ import annotations

import os
from typing import Any

from swirl_envs.task import Passage, Task
from swirl_envs.tasks.fields import as_object, field, first_field, passage_from_pair, string_list
from swirl_envs.tasks.files import DatasetFiles, OnError, RecordError, json_type, load_tasks
from swirl_envs.tasks.hotpotqa import supporting_titles
from swirl_envs.tasks.search_env import SearchQAEnv, gold_search_path

COFCA_FILES = DatasetFiles(
    name="CofCA",
    folder="cofca",
    files={"test": "cofca.json"},
    url="https://anonymous.4open.science/r/LLM_inherent_multi_step_eval-3818/ (the CofCA data)",
    notes="CofCA is one test set; see docs/datasets.md for the record shape read.",
)

_TEXT_KEYS = ("text", "paragraph_text", "sentences")
_SUB_QUESTION_KEYS = ("sub_questions", "question_decomposition")


def cofca_task(record: Any, index: int) -> Task:
    """Build a task from one CofCA record (HotPotQA-style; see the module docstring)."""
    record = as_object(record)
    task_id = first_field(record, ("_id", "id"), str)
    question = field(record, "question", str).strip()
    answers = _answers(record)
    context = first_field(record, ("context", "paragraphs"), list)
    if not context:
        raise RecordError("the context is empty.")
    passages = tuple(
        _passage(item, f"context item {position + 1}", f"{task_id}#{position}")
        for position, item in enumerate(context)
    )
    if record.get("supporting_facts"):
        supporting = supporting_titles(field(record, "supporting_facts", list))
        by_title = {passage.title: passage for passage in reversed(passages)}
        missing = [title for title in supporting if title not in by_title]
        if missing:
            raise RecordError(f"supporting title {missing[0]!r} is not a title in 'context'.")
        targets = [by_title[title] for title in supporting]
    else:
        targets = list(passages)
        supporting = tuple(passage.id for passage in passages)
    gold_path, gold_meta = gold_search_path(
        [(passage, (f"{passage.title} {question}",)) for passage in targets], passages, answers[0]
    )
    return Task(
        id=task_id,
        question=question,
        answers=answers,
        gold_path=gold_path,
        passages=passages,
        supporting=supporting,
        meta={"sub_questions": _sub_questions(record), **gold_meta},
    )


def _answers(record: dict[str, Any]) -> tuple[str, ...]:
    if "answer" in record and isinstance(record["answer"], str):
        return (record["answer"],)
    key = "answer" if "answer" in record else "answers"
    if key not in record:
        raise RecordError("missing key 'answer' or 'answers'.")
    return tuple(string_list(record, key))


def _passage(item: Any, what: str, passage_id: str) -> Passage:
    if not isinstance(item, dict):
        return passage_from_pair(item, what, passage_id)
    title = field(item, "title", str, f"{what}.title")
    key = next((key for key in _TEXT_KEYS if key in item), None)
    if key is None:
        raise RecordError(f"{what} has none of the text keys {list(_TEXT_KEYS)}.")
    return passage_from_pair([title, item[key]], what, passage_id)


def _sub_questions(record: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    key = next((key for key in _SUB_QUESTION_KEYS if key in record), None)
    if key is None:
        return ()
    steps = field(record, key, list)
    pairs = []
    for position, step in enumerate(steps):
        step = as_object(step, f"{key}[{position}]")
        answer = step.get("answer", "")
        if not isinstance(answer, str):
            raise RecordError(
                f"{key}[{position}].answer must be a string, got {json_type(answer)}."
            )
        pairs.append((field(step, "question", str, f"{key}[{position}].question"), answer))
    return tuple(pairs)


def load_cofca(
    data_path: str | os.PathLike[str] | None = None,
    *,
    split: str = "test",
    on_error: OnError = "raise",
) -> list[Task]:
    """Load CofCA tasks.

    Args:
        data_path: The CofCA JSON/JSONL file or its folder (``cofca.json``); ``None``
            looks in the data folder (CofCA is not on the Hub).
        split: ``"test"`` (CofCA is a test set).
        on_error: ``"raise"`` or ``"skip"`` for malformed records (see ``load_tasks``).
    """
    return load_tasks(COFCA_FILES, cofca_task, data_path=data_path, split=split, on_error=on_error)


class CofCAEnv(SearchQAEnv):
    """``swirl/CofCA-v0``: CofCA questions with the search tool; reward = exact match.

    See ``SearchQAEnv`` for the arguments; the only split is ``"test"``.
    """

    default_split = "test"

    def load(
        self, data_path: str | os.PathLike[str] | None, split: str, on_error: OnError
    ) -> list[Task]:
        """Load CofCA (see ``load_cofca``)."""
        return load_cofca(data_path, split=split, on_error=on_error)

"""MuSiQue (Trivedi et al., 2022): 2-4 hop questions built from single hops, answered with search.

The original files (``musique_ans_v1.0_{train,dev}.jsonl``; MuSiQue-Full:
``musique_full_v1.0_{train,dev}.jsonl``) hold one record per line::

    {"id": "2hop__150763_14904", "question": "...", "answer": "G. Stanley Hall",
     "answer_aliases": ["Stanley Hall"], "answerable": true,
     "paragraphs": [{"idx": 0, "title": "...", "paragraph_text": "...",
                     "is_supporting": false}, ...],
     "question_decomposition": [
         {"id": 150763, "question": "What company published ...?",
          "answer": "American Psychological Association", "paragraph_support_idx": 6},
         {"id": 14904, "question": "Who was the first president of #1 ?", ...}]}

The answer and its aliases all count as correct. Titles repeat (several paragraphs
of one article), so the gold path's query for a supporting paragraph is its title
only when that title is unique among the question's paragraphs; otherwise it is the
first of (title + sub-question, title + sub-question + sub-answer, sub-question +
sub-answer) that the search tool ranks on that paragraph first, with ``#k`` in a
sub-question replaced by the k-th sub-answer. ``Task.meta["gold_queries_top1"]``
records whether every query does.

MuSiQue-Full adds unanswerable questions (``"answerable": false``), whose
supporting evidence was removed from the paragraphs. The dataset scores them on
answerability, so here the one correct answer to such a question is the marker
``UNANSWERABLE`` ("unanswerable"), and any other answer scores 0; an answerable
question answered with the marker scores 0 too. ``Task.answerable`` and the
env's ``info["answerable"]`` (at reset and on the answer) expose the flag.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Any

from swirl_envs.scoring import Scores, normalize_answer, squad_qa_scores
from swirl_envs.task import Passage, Task
from swirl_envs.tasks.fields import as_object, field, optional_field, string_list
from swirl_envs.tasks.files import DatasetFiles, HubDataset, OnError, RecordError, load_tasks
from swirl_envs.tasks.search_env import SearchQAEnv, gold_search_path

UNANSWERABLE = "unanswerable"
"""The answer that says a MuSiQue-Full question cannot be answered from its paragraphs."""

VARIANTS = ("ans", "full")

_REFERENCE = re.compile(r"#(\d+)")


def musique_files(variant: str = "ans") -> DatasetFiles:
    """The files of MuSiQue-Answerable (``"ans"``) or MuSiQue-Full (``"full"``)."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}.")
    files = {split: f"musique_{variant}_v1.0_{split}.jsonl" for split in ("train", "dev", "test")}
    return DatasetFiles(
        name=f"MuSiQue-{'Answerable' if variant == 'ans' else 'Full'}",
        folder="musique",
        files=files,
        url="https://github.com/StonyBrookNLP/musique (download_data.sh fetches musique_v1.0.zip)",
        hub=HubDataset(
            "bdsaglam/musique",
            splits={split: f"data/{name}" for split, name in files.items()},
            original_files=True,
        ),
        notes="The test files have no answers; evaluate on dev.",
    )


def musique_task(record: Any, index: int) -> Task:
    """Build a task from one MuSiQue record."""
    record = as_object(record)
    task_id = field(record, "id", str)
    answer = field(record, "answer", str)
    has_aliases = record.get("answer_aliases") is not None
    aliases = string_list(record, "answer_aliases", allow_empty=True) if has_aliases else []
    answerable = optional_field(record, "answerable", bool, True)
    by_idx, marked = _paragraphs(record, task_id)
    passages = tuple(by_idx.values())
    steps = _decomposition(record, by_idx, answerable)
    # Supporting paragraphs in hop order, then any other paragraph marked supporting.
    hops = [passage.id for passage, _, _ in steps if passage is not None]
    supporting = tuple(dict.fromkeys(hops + marked))
    targets = [
        (
            passage,
            (
                f"{passage.title} {question}",
                f"{passage.title} {question} {sub_answer}",
                f"{question} {sub_answer}",
            ),
        )
        for passage, question, sub_answer in steps
        if passage is not None
    ]
    gold_path, gold_meta = gold_search_path(
        targets, passages, answer if answerable else UNANSWERABLE
    )
    return Task(
        id=task_id,
        question=field(record, "question", str).strip(),
        answers=(answer, *aliases) if answerable else (UNANSWERABLE,),
        gold_path=gold_path,
        passages=passages,
        supporting=supporting,
        answerable=answerable,
        meta={
            "hops": len(steps),
            "decomposition": tuple((question, sub_answer) for _, question, sub_answer in steps),
            "dataset_answer": answer,
            "answer_aliases": tuple(aliases),
            **gold_meta,
        },
    )


def _paragraphs(record: dict[str, Any], task_id: str) -> tuple[dict[int, Passage], list[str]]:
    """The passages by ``idx``, and the ids of those marked ``is_supporting``."""
    paragraphs = field(record, "paragraphs", list)
    if not paragraphs:
        raise RecordError("'paragraphs' is empty.")
    by_idx: dict[int, Passage] = {}
    marked: list[str] = []
    for position, paragraph in enumerate(paragraphs):
        where = f"paragraphs[{position}]"
        paragraph = as_object(paragraph, where)
        idx = field(paragraph, "idx", int, f"{where}.idx")
        if idx in by_idx:
            raise RecordError(f"{where}.idx {idx} repeats an earlier paragraph's idx.")
        title = field(paragraph, "title", str, f"{where}.title")
        text = field(paragraph, "paragraph_text", str, f"{where}.paragraph_text")
        by_idx[idx] = Passage(title=sys.intern(title), text=text.strip(), id=f"{task_id}#{idx}")
        if optional_field(paragraph, "is_supporting", bool, False, f"{where}.is_supporting"):
            marked.append(by_idx[idx].id)
    return by_idx, marked


def _decomposition(
    record: dict[str, Any], by_idx: dict[int, Passage], answerable: bool
) -> list[tuple[Passage | None, str, str]]:
    """``(supporting passage, sub-question with #k filled in, sub-answer)`` per hop.

    The passage is None for a hop of an unanswerable question whose paragraph was
    removed; an answerable question must have every hop's paragraph.
    """
    steps: list[tuple[Passage | None, str, str]] = []
    answers: list[str] = []
    for position, step in enumerate(optional_field(record, "question_decomposition", list, [])):
        where = f"question_decomposition[{position}]"
        step = as_object(step, where)
        question = field(step, "question", str, f"{where}.question")
        sub_answer = field(step, "answer", str, f"{where}.answer")
        support = step.get("paragraph_support_idx")
        if support is not None and not isinstance(support, int):
            raise RecordError(f"{where}.paragraph_support_idx must be an integer or null.")
        if answerable and support not in by_idx:
            raise RecordError(f"{where}.paragraph_support_idx {support} is not a paragraph's idx.")
        steps.append((by_idx.get(support), fill_references(question, answers, where), sub_answer))
        answers.append(sub_answer)
    return steps


def fill_references(question: str, answers: list[str], where: str = "sub-question") -> str:
    """Replace ``#k`` by the k-th earlier sub-answer and ``A >> relation`` by ``A relation``."""

    def answer_of(match: re.Match[str]) -> str:
        number = int(match.group(1))
        if not 1 <= number <= len(answers):
            raise RecordError(
                f"{where} refers to #{number}, but only {len(answers)} hops precede it."
            )
        return answers[number - 1]

    return " ".join(_REFERENCE.sub(answer_of, question).replace(">>", " ").split())


def load_musique(
    data_path: str | os.PathLike[str] | None = None,
    *,
    split: str = "dev",
    variant: str = "ans",
    on_error: OnError = "raise",
) -> list[Task]:
    """Load MuSiQue tasks.

    Args:
        data_path: The split's JSONL file or its folder; ``None`` looks in the data
            folder, then on the Hugging Face Hub (``bdsaglam/musique``, the original files).
        split: ``"train"`` or ``"dev"`` (the test files have no answers).
        variant: ``"ans"`` (MuSiQue-Answerable) or ``"full"`` (with unanswerable questions);
            chooses the file name when ``data_path`` is a folder or ``None``.
        on_error: ``"raise"`` or ``"skip"`` for malformed records (see ``load_tasks``).
    """
    files = musique_files(variant)
    return load_tasks(files, musique_task, data_path=data_path, split=split, on_error=on_error)


def is_unanswerable_claim(prediction: str) -> bool:
    """Whether an answer is the marker that says the question cannot be answered."""
    return normalize_answer(prediction) == UNANSWERABLE


class MuSiQueEnv(SearchQAEnv):
    """``swirl/MuSiQue-v0``: MuSiQue questions with the search tool; reward = exact match.

    Aliases count as correct. EM and F1 are those of MuSiQue's official
    ``metrics/answer.py`` (SQuAD's rules: F1 has no yes/no special case), the best over
    the answer and its aliases. With ``variant="full"``, an unanswerable question is
    answered correctly only by ``<answer>unanswerable</answer>``; ``info`` carries
    ``answerable`` (the dataset's flag) and, on the answer, ``predicted_answerable``.

    Args:
        data_path: The split's JSONL file or its folder (see ``load_musique``).
        variant: ``"ans"`` (default) or ``"full"``.
        **kwargs: ``SearchQAEnv`` arguments (``split`` defaults to ``"dev"``).
    """

    default_split = "dev"
    eval_split = "dev"
    # MuSiQue's own metrics/answer.py: SQuAD's F1, without HotPotQA's yes/no rule.
    metric = staticmethod(squad_qa_scores)

    def __init__(
        self,
        data_path: str | os.PathLike[str] | None = None,
        *,
        variant: str = "ans",
        **kwargs: Any,
    ):
        self.variant = variant
        super().__init__(data_path, **kwargs)

    def load(
        self, data_path: str | os.PathLike[str] | None, split: str, on_error: OnError
    ) -> list[Task]:
        """Load MuSiQue (see ``load_musique``)."""
        return load_musique(data_path, split=split, variant=self.variant, on_error=on_error)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        """Start an episode; ``info["answerable"]`` is the question's answerability."""
        observation, info = super().reset(seed=seed, options=options)
        info["answerable"] = self.task.answerable
        return observation, info

    def score_answer(self, task: Task, prediction: str) -> Scores:
        """EM/F1 against the answer and aliases (or the marker), plus the answerability flags."""
        scores = super().score_answer(task, prediction)
        scores["answerable"] = float(task.answerable)
        scores["predicted_answerable"] = float(not is_unanswerable_claim(prediction))
        return scores

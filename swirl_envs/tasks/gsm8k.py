r"""GSM8K (Cobbe et al., 2021): grade-school math word problems, solved with the calculator.

The original files (github.com/openai/grade-school-math, ``grade_school_math/data/
{train,test}.jsonl``) hold one JSON object per line::

    {"question": "Natalia sold clips to 48 of her friends ...",
     "answer": "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n...\n#### 72"}

The gold answer is the number after ``####``. Each ``<<expression=result>>``
annotation is one calculator call, so the gold path is ``<math_exp>48/2</math_exp>``,
``<math_exp>48+24</math_exp>``, ``<answer>72</answer>``. A gold path is kept only if
every annotation, run through the env's calculator, gives its annotated result
(rounded as the annotation is); otherwise the gold path is the answer alone and
``Task.meta["gold_path_issue"]`` says why. The count is logged.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import replace
from fractions import Fraction
from typing import Any

from swirl_envs.env import AnswerJudge, SwirlEnv
from swirl_envs.prompts import CALCULATOR_PROMPT
from swirl_envs.scoring import math_scores, numbers_equal, parse_number
from swirl_envs.task import Task
from swirl_envs.tasks.fields import answer_action, field, tag_action
from swirl_envs.tasks.files import DatasetFiles, HubDataset, OnError, RecordError, load_tasks
from swirl_envs.tools.base import Tool
from swirl_envs.tools.calculator import Calculator

logger = logging.getLogger("swirl_envs.tasks")

GSM8K_FILES = DatasetFiles(
    name="GSM8K",
    folder="gsm8k",
    files={"train": "train.jsonl", "test": "test.jsonl"},
    url="https://github.com/openai/grade-school-math (folder grade_school_math/data)",
    hub=HubDataset("openai/gsm8k", config="main", splits={"train": "train", "test": "test"}),
)

_ANNOTATION = re.compile(r"<<([^<>]*)>>")
_FINAL = "####"


def parse_solution(solution: str) -> tuple[list[tuple[str, str]], str]:
    """Split a GSM8K solution into its ``(expression, result)`` annotations and final answer.

    Raises:
        RecordError: There is no ``#### N`` line or N is not a number. Malformed
            annotations (no ``=``) are returned with an empty result.
    """
    if _FINAL not in solution:
        raise RecordError(f"'answer' has no final '{_FINAL} N' line.")
    body, final = solution.rsplit(_FINAL, 1)
    final = final.strip()
    if parse_number(final) is None:
        raise RecordError(f"the final answer after '{_FINAL}' is not a number: {final!r}.")
    annotations = []
    for match in _ANNOTATION.finditer(body):
        expression, equals, result = match.group(1).rpartition("=")
        annotations.append((expression.strip(), result.strip()) if equals else (match.group(1), ""))
    return annotations, final


def gsm8k_task(record: Any, index: int) -> Task:
    """Build a task from one GSM8K record (``question``, ``answer``) at position ``index``."""
    question = field(record, "question", str)
    solution = field(record, "answer", str)
    annotations, final = parse_solution(solution)
    steps = tuple(tag_action(Calculator.tag, expression) for expression, _ in annotations)
    return Task(
        id=f"gsm8k-{index}",
        question=question.strip(),
        answers=(final,),
        gold_path=(*steps, answer_action(final)),
        meta={"solution": solution, "annotations": tuple(annotations)},
    )


def annotation_issue(expression: str, result: str, calculator: Tool, task: Task) -> str | None:
    """Why ``<<expression=result>>`` does not replay through ``calculator``, or None if it does."""
    if not result:
        return f"annotation <<{expression}>> has no '=result'"
    if parse_number(result) is None:
        return f"annotation <<{expression}={result}>> has no numeric result"
    output = calculator(expression, task)
    if output.ok and (numbers_equal(output.text, result) or _rounds_to(output.text, result)):
        return None
    return f"<math_exp>{expression}</math_exp> gives {output.text!r}, the annotation says {result}"


def _rounds_to(calculated: str, written: str) -> bool:
    """Whether ``calculated`` rounds to ``written`` at its decimals (10/3 is written 3.33)."""
    value, target = parse_number(calculated), parse_number(written)
    if value is None or target is None:
        return False
    decimals = len(written.rsplit(".", 1)[1]) if "." in written else 0
    return abs(value - target) <= Fraction(1, 2 * 10**decimals)


def verify_gold_path(task: Task, calculator: Tool) -> Task:
    """``task`` if its annotations replay through ``calculator``, else an answer-only copy."""
    for expression, result in task.meta["annotations"]:
        issue = annotation_issue(expression, result, calculator, task)
        if issue is not None:
            meta = {**task.meta, "gold_path_issue": issue}
            return replace(task, gold_path=(answer_action(task.answer),), meta=meta)
    return task


def load_gsm8k(
    data_path: str | os.PathLike[str] | None = None,
    *,
    split: str = "test",
    on_error: OnError = "raise",
    calculator: Tool | None = None,
) -> list[Task]:
    """Load GSM8K tasks, checking each gold path against ``calculator`` when one is given.

    Args:
        data_path: ``train.jsonl``/``test.jsonl`` or their folder; ``None`` looks in the
            data folder, then on the Hugging Face Hub (``openai/gsm8k``).
        split: ``"train"`` or ``"test"``.
        on_error: ``"raise"`` or ``"skip"`` for malformed records (see ``load_tasks``).
        calculator: The tool whose results the annotations must reproduce.
    """
    tasks = load_tasks(GSM8K_FILES, gsm8k_task, data_path=data_path, split=split, on_error=on_error)
    if calculator is None:
        return tasks
    tasks = [verify_gold_path(task, calculator) for task in tasks]
    answer_only = sum("gold_path_issue" in task.meta for task in tasks)
    if answer_only:
        logger.info(
            "GSM8K: %d of %d tasks have annotations the calculator does not reproduce; "
            "their gold path is the answer alone (Task.meta['gold_path_issue']).",
            answer_only,
            len(tasks),
        )
    return tasks


class GSM8KEnv(SwirlEnv):
    """``swirl/GSM8K-v0``: GSM8K word problems with the calculator; reward = numeric equality.

    Args:
        data_path: ``train.jsonl``/``test.jsonl`` or their folder (see ``load_gsm8k``).
        split: ``"train"`` or ``"test"``.
        max_steps: Step budget (the paper allows 10 calculator calls).
        system_prompt: Overrides ``CALCULATOR_PROMPT``.
        judge: Optional answer judge ``(question, gold answers, prediction) -> score``.
        on_error: ``"raise"`` or ``"skip"`` for malformed records.
        render_mode: ``"ansi"``, ``"human"`` or None.
        **kwargs: Passed on to ``SwirlEnv`` (``max_action_chars``, ``max_result_chars``).
    """

    def __init__(
        self,
        data_path: str | os.PathLike[str] | None = None,
        *,
        split: str = "test",
        max_steps: int = 10,
        system_prompt: str | None = None,
        judge: AnswerJudge | None = None,
        on_error: OnError = "raise",
        render_mode: str | None = None,
        **kwargs: Any,
    ):
        calculator = Calculator()
        tasks = load_gsm8k(data_path, split=split, on_error=on_error, calculator=calculator)
        super().__init__(
            tasks,
            [calculator],
            system_prompt=CALCULATOR_PROMPT if system_prompt is None else system_prompt,
            max_steps=max_steps,
            scorer=math_scores,
            judge=judge,
            render_mode=render_mode,
            **kwargs,
        )

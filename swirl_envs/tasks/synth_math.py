"""SynthMath: generated arithmetic word problems that need the calculator.

A problem is a story about one running quantity ("Mira has 12 marbles.") followed
by 2-8 phrased operations ("She gives away 3.", "She shares them equally among 4
friends and keeps one share."), then the question "How many marbles does Mira
have now?". The gold path is one ``<math_exp>A op B</math_exp>`` per operation,
each using the previous result, then ``<answer>N</answer>``.

Phrasings are first-class (``PHRASINGS``, keyed by names such as ``"give_away"``)
so that experiments can tie behaviour to them: a base model with a systematic
misconception ("gives away n" read as ``+``) is measured on the problems that use
that phrasing. For that, every generated problem stays valid under any single
wrong operator: replacing the operator of one step by its inverse (``+`` and
``-``, ``*`` and ``/``) and applying the later steps unchanged keeps every value a
non-negative integer.

Splits are disjoint by construction: a problem belongs to the split that its
sequence of phrasing keys hashes to (``split_of``), so every test problem is a
phrasing sequence that no train problem uses.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from swirl_envs.env import AnswerJudge, SwirlEnv
from swirl_envs.prompts import CALCULATOR_PROMPT
from swirl_envs.scoring import math_scores
from swirl_envs.task import Task
from swirl_envs.tools.calculator import Calculator

SPLITS = ("train", "test")
TEST_PERCENT = 20
"""Percent of phrasing sequences (a problem's structural key) that belong to the test split."""

INVERSE_OPERATOR = {"+": "-", "-": "+", "*": "/", "/": "*"}
"""The operator a confused step uses instead of the right one."""


@dataclass(frozen=True)
class Phrasing:
    """One way to word an operation on the running quantity.

    Attributes:
        key: Stable name recorded in ``Task.meta["phrasings"]`` (``"give_away"``).
        operator: The calculator operator the step needs: ``+``, ``-``, ``*`` or ``/``.
        template: The sentence; ``{n}`` is the operand, ``{she}``/``{her}`` the
            character's pronouns, ``{items}`` the quantity's noun.
        operand: A fixed operand the wording implies ("doubles" is 2), or None
            when the sentence states it.
    """

    key: str
    operator: str
    template: str
    operand: int | None = None


PHRASINGS: dict[str, Phrasing] = {
    phrasing.key: phrasing
    for phrasing in (
        Phrasing("buy_more", "+", "{she} buys {n} more."),
        Phrasing("find_more", "+", "{she} finds {n} more."),
        Phrasing("receive", "+", "a friend gives {her} {n} more."),
        Phrasing("give_away", "-", "{she} gives away {n}."),
        Phrasing("sell", "-", "{she} sells {n}."),
        Phrasing("lose", "-", "{she} loses {n}."),
        Phrasing("times_as_many", "*", "{she} ends up with {n} times as many."),
        Phrasing("double", "*", "the number of {items} doubles.", operand=2),
        Phrasing("triple", "*", "the number of {items} triples.", operand=3),
        Phrasing(
            "share_equally", "/", "{she} shares them equally among {n} friends and keeps one share."
        ),
        Phrasing("split_piles", "/", "{she} splits them into {n} equal piles and keeps one pile."),
        Phrasing("halve", "/", "{she} keeps only half of them.", operand=2),
    )
}
"""Every phrasing, keyed by name; several per operator."""

CHARACTERS = (
    ("Mira", "she", "her"), ("Tomas", "he", "him"), ("Lena", "she", "her"), ("Omar", "he", "him"),
    ("Priya", "she", "her"), ("Jonas", "he", "him"), ("Ada", "she", "her"), ("Kofi", "he", "him"),
    ("Sofia", "she", "her"), ("Ivan", "he", "him"), ("Yuki", "she", "her"), ("Diego", "he", "him"),
)  # fmt: skip
"""Story characters: (name, subject pronoun, object pronoun)."""

ITEMS = (
    "apples", "marbles", "stickers", "coins", "cards", "shells",
    "pencils", "stamps", "beads", "cookies", "buttons", "books",
)  # fmt: skip
"""Nouns for the running quantity."""

_SEARCH_NODES = 40  # start values and operands tried per phrasing sequence
# Phrasing sequences tried per problem. With the default knobs about 1 in 20 eight-step
# sequences succeeds in the test split (1 in 5 is a test sequence, about 1 in 4 of those
# gets numbers within the search budget), so 1000 failures in a row mean the knobs
# admit (almost) no problem of that length.
_SEQUENCE_TRIES = 1000
_DUPLICATES_ALLOWED_PER_TASK = 10


def split_of(key: str) -> str:
    """Return the split (``"train"`` or ``"test"``) that a structural key belongs to.

    A stable hash (CRC-32, not Python's salted ``hash``) decides, so a key lands in
    the same split in every process and every version.
    """
    return "test" if zlib.crc32(key.encode("utf-8")) % 100 < TEST_PERCENT else "train"


def apply_operator(operator: str, a: int, b: int) -> int | None:
    """Apply ``a operator b`` on non-negative integers; None when the result is not one.

    Subtraction below zero and inexact division are invalid, so callers can ask
    whether a (possibly confused) continuation of a problem stays well-formed.
    """
    if operator == "+":
        return a + b
    if operator == "-":
        return a - b if a >= b else None
    if operator == "*":
        return a * b
    if operator == "/":
        return a // b if b and a % b == 0 else None
    raise ValueError(f"Unknown operator {operator!r}; expected one of + - * /.")


@dataclass(frozen=True)
class _Limits:
    max_value: int
    max_operand: int
    max_factor: int


@dataclass(frozen=True)
class _Problem:
    """A drawn problem: start value, phrasings and operands (values follow from them)."""

    phrasings: tuple[Phrasing, ...]
    start: int
    operands: tuple[int, ...]


def generate_synth_math(
    n: int,
    *,
    seed: int = 0,
    split: str = "train",
    min_ops: int = 2,
    max_ops: int = 8,
    max_value: int = 100,
    max_operand: int = 20,
    max_factor: int = 5,
    phrasings: Sequence[str] | None = None,
) -> list[Task]:
    """Generate ``n`` distinct word problems, deterministically from ``seed`` and ``split``.

    Args:
        n: Number of problems.
        seed: Generation seed; train and test draw from separate streams.
        split: ``"train"`` or ``"test"``; the splits share no phrasing sequence.
        min_ops: Fewest operations in a problem.
        max_ops: Most operations in a problem.
        max_value: Largest start value and largest intermediate result (results are
            integers in ``[1, max_value]``), the knob for number size.
        max_operand: Largest operand of an addition or subtraction.
        max_factor: Largest multiplier or divisor (phrasings with a larger fixed
            operand, such as "triples" when it is 2, are left out).
        phrasings: Keys of ``PHRASINGS`` to use; all by default.

    Returns:
        Tasks whose ``meta`` holds ``operators``, ``phrasings``, ``operands``,
        ``values`` (start value, then every step's result), ``num_ops``,
        ``character``, ``items`` and ``split``.

    Raises:
        ValueError: On an invalid knob, or when the knobs admit fewer than ``n``
            distinct problems in the split.
    """
    _check_split(split)
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}.")
    if not 1 <= min_ops <= max_ops:
        raise ValueError(f"Need 1 <= min_ops <= max_ops, got min_ops={min_ops}, max_ops={max_ops}.")
    if max_value < 2 or max_operand < 1 or max_factor < 2:
        raise ValueError(
            f"Need max_value >= 2, max_operand >= 1 and max_factor >= 2; got {max_value}, "
            f"{max_operand} and {max_factor}."
        )
    limits = _Limits(max_value, max_operand, max_factor)
    available = _available_phrasings(phrasings, max_factor)
    rng = random.Random(f"synth_math/{split}/{seed}")
    tasks: list[Task] = []
    questions: set[str] = set()
    duplicates = 0
    while len(tasks) < n:
        # The count is drawn once per problem, so long problems (which fail more
        # often) are as frequent as short ones.
        count = rng.randint(min_ops, max_ops)
        problem = _draw_problem(rng, available, count, split, limits)
        if problem is None:
            raise ValueError(
                f"Found no {split} problem with {count} operations in {_SEQUENCE_TRIES} tries "
                f"with max_value={max_value}, max_operand={max_operand}, max_factor={max_factor} "
                f"and {len(available)} phrasings; loosen the knobs (with few phrasings and "
                f"operations, a split may hold no phrasing sequence at all)."
            )
        task = _make_task(problem, rng, f"synth_math/{split}/{seed}/{len(tasks)}", split)
        if task.question in questions:
            duplicates += 1
            if duplicates > _DUPLICATES_ALLOWED_PER_TASK * n:
                raise ValueError(
                    f"Could only generate {len(tasks)} of {n} distinct {split} problems with "
                    f"min_ops={min_ops}, max_ops={max_ops}, max_value={max_value}; "
                    f"loosen the knobs or ask for fewer."
                )
            continue
        questions.add(task.question)
        tasks.append(task)
    return tasks


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}.")


def _available_phrasings(keys: Sequence[str] | None, max_factor: int) -> list[Phrasing]:
    unknown = sorted(set(keys or ()) - set(PHRASINGS))
    if unknown:
        raise ValueError(f"Unknown phrasings {unknown}; known: {sorted(PHRASINGS)}.")
    chosen = [PHRASINGS[key] for key in (keys if keys is not None else PHRASINGS)]
    chosen = [p for p in chosen if p.operand is None or p.operand <= max_factor]
    if not chosen:
        raise ValueError(f"No phrasing is usable with max_factor={max_factor}.")
    return chosen


def _draw_problem(
    rng: random.Random, available: list[Phrasing], count: int, split: str, limits: _Limits
) -> _Problem | None:
    """Draw ``count`` phrasings whose key sequence is in ``split``, and numbers for them."""
    for _ in range(_SEQUENCE_TRIES):
        sequence = tuple(rng.choice(available) for _ in range(count))
        if split_of(sequence_key(p.key for p in sequence)) != split:
            continue
        problem = _draw_numbers(rng, sequence, limits)
        if problem is not None:
            return problem
    return None


def sequence_key(phrasing_keys: Iterable[str]) -> str:
    """The structural key of a problem: its phrasing keys in order, joined by ``>``."""
    return ">".join(phrasing_keys)


def _operand_candidates(
    phrasing: Phrasing, value: int, confused: list[int], limits: _Limits
) -> list[int]:
    """Operands for which the gold step and every confused branch stay valid.

    ``confused`` holds the values a solver would have now had it used the inverse
    operator at one earlier step. The new step must keep those valid, and its own
    inverse (a new confused branch) must be valid too.
    """
    operator = phrasing.operator
    if operator == "+":
        # v + b <= max_value; the confused v - b must stay >= 0.
        return list(range(1, min(limits.max_operand, limits.max_value - value, value) + 1))
    if operator == "-":
        # v - b >= 1; every confused branch w - b must stay >= 0.
        return list(range(1, min(limits.max_operand, value - 1, *confused) + 1))
    factors = [phrasing.operand] if phrasing.operand else range(2, limits.max_factor + 1)
    if operator == "*":
        # v * b <= max_value; the confused v / b must be exact.
        return [b for b in factors if value * b <= limits.max_value and value % b == 0]
    # v / b exact, and exact on every confused branch too.
    return [b for b in factors if value % b == 0 and all(w % b == 0 for w in confused)]


def _advance(
    phrasing: Phrasing, value: int, confused: list[int], operand: int
) -> tuple[int, list[int]]:
    """The next gold value and confused branches (the last one is this step's inverse)."""
    operator = phrasing.operator
    outcomes = [apply_operator(operator, w, operand) for w in (value, *confused)]
    outcomes.append(apply_operator(INVERSE_OPERATOR[operator], value, operand))
    valid = [outcome for outcome in outcomes if outcome is not None]
    assert len(valid) == len(outcomes)  # _operand_candidates only offers such operands
    return valid[0], valid[1:]


def _draw_numbers(
    rng: random.Random, sequence: tuple[Phrasing, ...], limits: _Limits
) -> _Problem | None:
    """Choose a start value and operands for ``sequence``, or None if the search budget runs out.

    A depth-first search over start values and operands, each level in random
    order, that backtracks when a step has no valid operand. Restarting from
    scratch instead wastes most draws on long sequences, whose late divisions
    constrain early choices.
    """
    budget = [_SEARCH_NODES]
    for start in _shuffled(rng, range(1, limits.max_value + 1), budget):
        operands = _search_operands(rng, sequence, start, [], limits, budget)
        if operands is not None:
            return _Problem(sequence, start, tuple(operands))
    return None


def _search_operands(
    rng: random.Random,
    sequence: tuple[Phrasing, ...],
    value: int,
    confused: list[int],
    limits: _Limits,
    budget: list[int],
) -> list[int] | None:
    if not sequence:
        return []
    options = _operand_candidates(sequence[0], value, confused, limits)
    for operand in _shuffled(rng, options, budget):
        next_value, next_confused = _advance(sequence[0], value, confused, operand)
        rest = _search_operands(rng, sequence[1:], next_value, next_confused, limits, budget)
        if rest is not None:
            return [operand, *rest]
    return None


def _shuffled(rng: random.Random, options: Iterable[int], budget: list[int]) -> Iterator[int]:
    """Yield ``options`` in random order (a lazy shuffle), spending one unit of ``budget`` each."""
    pool = list(options)
    while pool and budget[0] > 0:
        budget[0] -= 1
        position = rng.randrange(len(pool))
        yield pool[position]
        pool[position] = pool[-1]
        pool.pop()


def _make_task(problem: _Problem, rng: random.Random, task_id: str, split: str) -> Task:
    name, she, her = rng.choice(CHARACTERS)
    items = rng.choice(ITEMS)
    sentences = [f"{name} has {problem.start} {items}."]
    values = [problem.start]
    gold_path = []
    for phrasing, operand in zip(problem.phrasings, problem.operands, strict=True):
        sentence = phrasing.template.format(n=operand, she=she, her=her, items=items)
        sentences.append(sentence[0].upper() + sentence[1:])
        gold_path.append(f"<math_exp>{values[-1]} {phrasing.operator} {operand}</math_exp>")
        result = apply_operator(phrasing.operator, values[-1], operand)
        assert result is not None  # the operands were drawn to keep every step valid
        values.append(result)
    sentences.append(f"How many {items} does {name} have now?")
    gold_path.append(f"<answer>{values[-1]}</answer>")
    meta = {
        "operators": tuple(p.operator for p in problem.phrasings),
        "phrasings": tuple(p.key for p in problem.phrasings),
        "operands": problem.operands,
        "values": tuple(values),
        "num_ops": len(problem.phrasings),
        "character": name,
        "items": items,
        "split": split,
    }
    return Task(
        id=task_id,
        question=" ".join(sentences),
        answers=(str(values[-1]),),
        gold_path=tuple(gold_path),
        meta=meta,
        unique_sound_path=True,
    )


class SynthMathEnv(SwirlEnv):
    """``swirl/SynthMath-v0``: generated multi-step word problems solved with the calculator.

    Args:
        split: ``"train"`` or ``"test"`` (disjoint phrasing sequences).
        num_tasks: Number of problems generated for this env.
        seed: Generation seed (not the episode seed of ``reset``).
        min_ops: Fewest operations per problem.
        max_ops: Most operations per problem; must leave room for the answer
            within ``max_steps``.
        max_value: Largest start value and intermediate result.
        max_operand: Largest operand of an addition or subtraction.
        max_factor: Largest multiplier or divisor.
        phrasings: Keys of ``PHRASINGS`` to use; all by default.
        max_steps: Step budget per episode.
        system_prompt: Overrides ``CALCULATOR_PROMPT``.
        judge: Optional answer judge (see ``SwirlEnv``).
        render_mode: ``"ansi"``, ``"human"`` or None.
        **kwargs: Passed on to ``SwirlEnv`` (``max_action_chars``, ``max_result_chars``).
    """

    def __init__(
        self,
        split: str = "train",
        num_tasks: int = 500,
        seed: int = 0,
        *,
        min_ops: int = 2,
        max_ops: int = 8,
        max_value: int = 100,
        max_operand: int = 20,
        max_factor: int = 5,
        phrasings: Sequence[str] | None = None,
        max_steps: int = 10,
        system_prompt: str | None = None,
        judge: AnswerJudge | None = None,
        render_mode: str | None = None,
        **kwargs: Any,
    ):
        if max_ops + 1 > max_steps:
            raise ValueError(
                f"max_steps={max_steps} leaves no room for {max_ops} calculations and the answer; "
                f"use max_steps >= {max_ops + 1}."
            )
        tasks = generate_synth_math(
            num_tasks,
            seed=seed,
            split=split,
            min_ops=min_ops,
            max_ops=max_ops,
            max_value=max_value,
            max_operand=max_operand,
            max_factor=max_factor,
            phrasings=phrasings,
        )
        super().__init__(
            tasks,
            [Calculator()],
            system_prompt=CALCULATOR_PROMPT if system_prompt is None else system_prompt,
            max_steps=max_steps,
            scorer=math_scores,
            judge=judge,
            render_mode=render_mode,
            **kwargs,
        )

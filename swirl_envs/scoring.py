"""Answer scoring: QA exact match / F1 (HotPotQA's or SQuAD's official rules) and numeric equality.

Each scorer returns a dict of metrics whose ``"score"`` key is the task's headline
metric (the env's reward); the others go into ``info``.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable, Sequence
from fractions import Fraction

Scores = dict[str, float]
Scorer = Callable[[str, Sequence[str]], Scores]
F1Rule = Callable[[str, str], tuple[float, float, float]]

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = set(string.punctuation)
_SPECIAL = {"yes", "no", "noanswer"}
# What a model writes for "minus": the ASCII hyphen-minus, the minus sign U+2212, the en
# dash U+2013 (typeset text uses it for minus), and the small and fullwidth hyphen-minus.
_MINUS = "-\u2212\u2013\ufe63\uff0d"
# A number: an optional sign (then an optional currency symbol, as in "-$10"), digits with
# optional thousands commas, optional decimals, optional short exponent, optional
# "/denominator". A dash counts as a sign only where it cannot be a binary minus or a
# range, i.e. not right after a letter, digit or point ("10-4", "2019–2020" end in 4 and
# 2020). Exponents are capped at 3 digits so that "1e999999999" cannot build a huge integer.
_NUMBER = re.compile(
    rf"(?:(?<![\w.])(?P<sign>[+{re.escape(_MINUS)}])[$€£¥₹]?)?"
    r"(?P<magnitude>(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?(?:[eE][-+]?\d{1,3})?(?:\s*/\s*\d+)?)"
)
_MAX_NUMBER_CHARS = 64


def normalize_answer(text: str) -> str:
    """Lower-case, drop punctuation and articles, squash whitespace (the official normalisation)."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def f1_precision_recall(prediction: str, gold: str) -> tuple[float, float, float]:
    """Token F1, precision and recall after normalisation, as the HotPotQA script computes them.

    HotPotQA's rule: a yes/no/noanswer prediction or gold gets 0 unless the two are equal.
    """
    pred, ref = normalize_answer(prediction), normalize_answer(gold)
    if (pred in _SPECIAL or ref in _SPECIAL) and pred != ref:
        return 0.0, 0.0, 0.0
    return _token_f1(pred.split(), ref.split())


def squad_f1_precision_recall(prediction: str, gold: str) -> tuple[float, float, float]:
    """Token F1, precision and recall as SQuAD's script (and MuSiQue's ``metrics/answer.py``) does.

    No yes/no rule: "yes it is" shares a token with "yes". Two answers that normalise
    to nothing agree (1), as in SQuAD's no-answer case.
    """
    pred_tokens, ref_tokens = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not pred_tokens or not ref_tokens:
        agree = float(pred_tokens == ref_tokens)
        return agree, agree, agree
    return _token_f1(pred_tokens, ref_tokens)


def _token_f1(pred_tokens: list[str], ref_tokens: list[str]) -> tuple[float, float, float]:
    """F1, precision and recall of the tokens two answers share."""
    overlap = sum((Counter(pred_tokens) & Counter(ref_tokens)).values())
    if overlap == 0:
        return 0.0, 0.0, 0.0
    precision = overlap / len(pred_tokens)
    recall = overlap / len(ref_tokens)
    return 2 * precision * recall / (precision + recall), precision, recall


def _best_qa_scores(prediction: str, answers: Sequence[str], f1_rule: F1Rule) -> Scores:
    """EM (the score) and ``f1_rule``'s F1, precision and recall, each the best over ``answers``."""
    if not answers:
        return {"score": 0.0, "em": 0.0, "f1": 0.0, "precision": 0.0, "recall": 0.0}
    em = max(float(normalize_answer(prediction) == normalize_answer(a)) for a in answers)
    f1, precision, recall = max(f1_rule(prediction, a) for a in answers)
    return {"score": em, "em": em, "f1": f1, "precision": precision, "recall": recall}


def qa_scores(prediction: str, answers: Sequence[str]) -> Scores:
    """EM (the score), F1, precision and recall under HotPotQA's rules, best over ``answers``."""
    return _best_qa_scores(prediction, answers, f1_precision_recall)


def squad_qa_scores(prediction: str, answers: Sequence[str]) -> Scores:
    """EM (the score), F1, precision and recall under SQuAD's rules, best over ``answers``.

    MuSiQue's official metric (``metrics/answer.py`` in StonyBrookNLP/musique) is this one:
    the same EM, and F1 without HotPotQA's yes/no rule, the best over answer and aliases.
    """
    return _best_qa_scores(prediction, answers, squad_f1_precision_recall)


def parse_number(text: str) -> Fraction | None:
    """Read the number an answer states: "$1,000", "1000.00", "1e3", "3/4", "-$10", "−10".

    The last number in the text is used, as GSM8K evaluations do ("18 dollars" is 18);
    currency symbols, percent signs and thousands commas are ignored.
    """
    matches = [m for m in _NUMBER.finditer(text) if re.search(r"\d", m.group("magnitude"))]
    if not matches:
        return None
    last = matches[-1]
    sign = "-" if last.group("sign") and last.group("sign") in _MINUS else ""
    value = sign + last.group("magnitude").replace(",", "").replace(" ", "")
    if len(value) > _MAX_NUMBER_CHARS:
        return None
    try:
        return Fraction(value)
    except (ValueError, ZeroDivisionError):
        return None


def numbers_equal(prediction: str, gold: str, rel_tol: float = 1e-6) -> bool:
    """True when both texts state the same number.

    Integers must be equal: a relative tolerance would accept 1,450,001 for 1,450,000.
    Only when neither number is an integer may they differ by ``rel_tol`` (relative), so
    that a rounded decimal such as 0.3333333 matches 1/3.
    """
    a, b = parse_number(prediction), parse_number(gold)
    if a is None or b is None:
        return False
    if a == b:
        return True
    if a.denominator == 1 or b.denominator == 1:
        return False
    return abs(a - b) <= rel_tol * max(abs(a), abs(b))


def math_scores(prediction: str, answers: Sequence[str]) -> Scores:
    """Numeric equality with any of ``answers`` (the score), plus exact string match."""
    correct = any(numbers_equal(prediction, answer) for answer in answers)
    em = max(
        (float(normalize_answer(prediction) == normalize_answer(a)) for a in answers), default=0.0
    )
    return {"score": float(correct), "numeric": float(correct), "em": em}

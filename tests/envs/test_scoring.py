import pytest

from swirl_envs.scoring import (
    math_scores,
    numbers_equal,
    parse_number,
    qa_scores,
    squad_qa_scores,
)

NUMERIC_CASES = [
    ("$1,000", "1000", True),
    ("1000.00", "1000", True),
    ("1e3", "1000", True),
    ("3/4", "0.75", True),
    ("0.75", "3/4", True),
    ("18 dollars", "18", True),
    ("The answer is 42.", "42", True),
    ("-7", "-7", True),
    ("50%", "50", True),
    ("1,234,567", "1234567", True),
    ("17", "18", False),
    ("", "18", False),
    ("eighteen", "18", False),
    ("0.3333333", "1/3", True),
    ("0.33", "1/3", False),
    # Integers are equal or not: no relative tolerance near a large gold.
    ("1,450,001", "1,450,000", False),
    ("1450001", "1450000", False),
    ("1450000.00", "1,450,000", True),
    ("1450000.5", "1450000", False),
    ("-1450001", "-1450000", False),
    # A minus sign before a currency symbol, and Unicode minus signs, make a negative number.
    ("-$10", "-10", True),
    ("-$10", "10", False),
    ("The answer is -$1,200.50.", "-1200.5", True),
    ("\u221210", "-10", True),
    ("\u221210", "10", False),
    ("\u2013 nope, \u20137", "-7", True),
    # A dash right after a digit is a binary minus or a range, not a sign.
    ("10-4", "4", True),
    ("from 2019\u20132020", "2020", True),
]


@pytest.mark.parametrize(("prediction", "gold", "equal"), NUMERIC_CASES)
def test_numbers_equal_accepts_the_usual_ways_of_writing_a_number(prediction, gold, equal):
    assert numbers_equal(prediction, gold) is equal


def test_parse_number_refuses_huge_exponents_without_building_them():
    value = parse_number("1e999999999")
    assert value is None or abs(value) < 10**12
    assert parse_number("9" * 200) is None


def test_math_scores_reward_is_numeric_equality():
    assert math_scores("$10.00", ["10"])["score"] == 1.0
    assert math_scores("11", ["10"])["score"] == 0.0


def test_qa_scores_take_the_best_alias():
    scores = qa_scores("the United States", ["USA", "United States"])
    assert scores["em"] == 1.0 and scores["score"] == 1.0
    partial = qa_scores("Paris France", ["Paris"])
    assert partial["em"] == 0.0
    assert partial["f1"] == pytest.approx(2 / 3)
    assert partial["precision"] == pytest.approx(0.5)
    assert partial["recall"] == pytest.approx(1.0)


def test_yes_no_answers_get_no_partial_credit_under_hotpotqa_rules():
    assert qa_scores("no", ["yes"])["f1"] == 0.0
    assert qa_scores("yes it is", ["yes"])["f1"] == 0.0


def test_squad_rules_give_yes_no_answers_partial_credit_and_keep_em():
    partial = squad_qa_scores("yes it is", ["yes"])
    assert partial["em"] == partial["score"] == 0.0
    assert partial["f1"] == pytest.approx(0.5)
    assert partial["precision"] == pytest.approx(1 / 3) and partial["recall"] == 1.0
    assert squad_qa_scores("no", ["yes"])["f1"] == 0.0
    assert squad_qa_scores("Yes.", ["no", "yes"])["em"] == 1.0
    # Answers that normalise to nothing agree, as in SQuAD's no-answer case.
    assert squad_qa_scores("the", ["a"])["f1"] == 1.0
    assert squad_qa_scores("", ["Paris"])["f1"] == 0.0

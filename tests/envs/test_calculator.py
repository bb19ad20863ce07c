"""The safe calculator: expressions and their results, and hostile inputs that must come back
as an ``Error:`` text, quickly, with nothing executed."""

from __future__ import annotations

import math
import pickle
import time

import pytest

from swirl_envs import Task
from swirl_envs.env import SwirlEnv
from swirl_envs.prompts import CALCULATOR_PROMPT
from swirl_envs.scoring import math_scores
from swirl_envs.tools.calculator import Calculator, CalculatorLimits

TASK = Task(
    id="t",
    question="What is 6*7?",
    answers=("42",),
    gold_path=(
        "<math_exp>6 * 7</math_exp>",
        "<answer>42</answer>",
    ),
)
CALCULATOR = Calculator()
TIME_BOUND_S = 1.0

RESULTS = [
    # integers
    ("48 / 2", "24"),
    ("2 + 3 * 4", "14"),
    ("(2 + 3) * 4", "20"),
    ("7 // 2", "3"),
    ("-7 // 2", "-4"),
    ("7 % 3", "1"),
    ("-7 % 3", "2"),
    ("10 % (-3)", "-2"),
    ("-(-(-5))", "-5"),
    ("+5", "5"),
    ("12345678901234567890 * 10", "123456789012345678900"),
    ("10 ** 999", "1" + "0" * 999),
    # decimals and fractions: exact arithmetic, shown to 10 significant digits
    ("7 / 2", "3.5"),
    ("1 / 3", "0.3333333333"),
    ("2 / 3", "0.6666666667"),
    ("0.1 + 0.2", "0.3"),
    ("1 / 7 * 7", "1"),
    ("1 / 8", "0.125"),
    ("7.5 % 2", "1.5"),
    ("1.5e-3", "0.0015"),
    ("1e3", "1000"),
    (".5 + 1.", "1.5"),
    ("0.000001", "0.000001"),
    ("1 / 10000000", "1e-7"),
    ("12345678901234567890 / 7", "1.763668414e+18"),
    ("-1 / 3", "-0.3333333333"),
    # powers, with ^ as well as **
    ("2^10", "1024"),
    ("2 ** 10", "1024"),
    ("2^-2", "0.25"),
    ("-3^2", "-9"),
    ("(-2)^3", "-8"),
    ("(-2)^-3", "-0.125"),
    ("2^3^2", "512"),
    ("0^0", "1"),
    ("8^(1/3)", "2"),
    ("16^0.25", "2"),
    ("(9/4)^0.5", "1.5"),
    ("2^0.5", "1.414213562"),
    ("(-1)^(10^999)", "1"),
    ("(1 + 10^-999)^(10^999)", "2.718281828"),  # the size estimate keeps its precision near 1
    ("(3/2)^3000", "1.878352802e+528"),  # exact digits exceed the cap: a float result
    ("0.5^(10^999)", "0"),  # underflow
    # functions and constants
    ("sqrt(16)", "4"),
    ("sqrt(2)", "1.414213562"),
    ("sqrt(2)^2", "2"),
    ("sqrt(2)^2 - 2", "0"),
    ("abs(-3.5)", "3.5"),
    ("round(2.5)", "3"),
    ("round(-2.5)", "-3"),
    ("round(2.675, 2)", "2.68"),
    ("round(1234.5, -2)", "1200"),
    ("floor(-2.5)", "-3"),
    ("ceil(2.1)", "3"),
    ("min(3, 1, 2)", "1"),
    ("max(3, 1.5, 2)", "3"),
    ("log(8, 2)", "3"),
    ("log10(1000)", "3"),
    ("log2(1024)", "10"),
    ("ln(e)", "1"),
    ("log(e^2)", "2"),
    ("exp(0)", "1"),
    ("exp(1)", "2.718281828"),
    ("exp(-3000)", "0"),
    ("sin(pi)", "0"),
    ("cos(pi)", "-1"),
    ("sin(pi / 6)", "0.5"),
    ("tan(pi / 4)", "1"),
    ("pi", "3.141592654"),
    ("e", "2.718281828"),
    ("gcd(12, 18)", "6"),
    ("lcm(4, 6, 10)", "60"),
    ("factorial(0)", "1"),
    ("factorial(20)", "2432902008176640000"),
    # what people write
    ("6 × 7", "42"),
    ("6 ⋅ 7", "42"),
    ("84 ÷ 2", "42"),
    ("5 − 8", "-3"),
    ("2 * π", "6.283185307"),
    ("1,000 * 3", "3000"),
    ("1,234,567.5 * 2", "2469135"),
    ("(1,000 + 500) / 3", "500"),
    ("max(1,000, 2)", "2"),  # inside a call, commas separate arguments: max(1, 0, 2)
    ("gcd(12,345)", "3"),
    ("50%", "0.5"),
    ("15% * 80", "12"),
    ("80 * 15%", "12"),
    ("007 + 1", "8"),
    ("1_000 + 1", "1001"),
    ("  2 \n+\t2 ", "4"),
]


@pytest.mark.parametrize(("expression", "expected"), RESULTS)
def test_expression_gives_its_result(expression, expected):
    result = CALCULATOR(expression, TASK)
    assert result.ok, result.text
    assert result.text == expected


def test_the_largest_results_within_the_digit_cap_are_shown_in_full():
    assert CALCULATOR("factorial(449)", TASK).text == str(math.factorial(449))
    assert CALCULATOR("2^3321", TASK).text == str(2**3321)  # 1000 digits
    assert CALCULATOR("-9^1047 + 1", TASK).text == str(-(9**1047) + 1)


HOSTILE = [
    # code injection and syntax outside the whitelist
    ("__import__('os').system('echo calculator-pwned')", "unexpected character"),
    ("__import__(os)", "unknown function '__import__'"),
    ("__builtins__", "unknown name '__builtins__'"),
    ("().__class__", "attribute access"),
    ("(1).__class__.__bases__", "attribute access"),
    ("().__class__.__base__.__subclasses__()[0]", "unexpected character '['"),
    ("os.system(1)", "attribute access"),
    ("lambda: 1", "unexpected character ':'"),
    ("(lambda x: x)(1)", "unexpected character ':'"),
    ("[x for x in (1, 2)]", "unexpected character '['"),
    ("(x for x in (1, 2))", "generator expression"),
    ("{1: 2}", "unexpected character '{'"),
    ("x", "unknown name 'x'"),
    ("open", "unknown name 'open'"),
    ("open(1)", "unknown function 'open'"),
    ("eval(1)", "unknown function 'eval'"),
    ("exec(1)", "unknown function 'exec'"),
    ("'text'", "unexpected character"),
    ('"text"', "unexpected character"),
    ("f'{1}'", "unexpected character"),
    ("b'x'", "unexpected character"),
    ("round(2.5, ndigits=1)", "unexpected character '='"),
    ("max(*(1, 2))", "* unpacking"),
    ("1 if 1 else 0", "if/else"),
    ("1 and 2", "and/or"),
    ("not 1", "'not'"),
    ("1 is 1", "comparison"),
    ("1 < 2", "unexpected character '<'"),
    ("1 << 2", "unexpected character '<'"),
    ("2 @ 3", "unexpected character '@'"),
    ("True", "True is not allowed"),
    ("None", "None is not allowed"),
    ("...", "Ellipsis is not allowed"),
    ("1j", "complex number"),
    ("pi(2)", "constant, not a function"),
    ("sqrt", "is a function"),
    ("sqrt(1, 2)", "sqrt() takes 1 argument, got 2"),
    ("min()", "at least 1 argument"),
    ("2(3 + 4)", "implicit multiplication"),
    ("1, 2", "comma outside a function call"),
    ("50% - 10", "ambiguous"),
    ("$5", "unexpected character '$'"),
    ("1 +", "cannot parse"),
    ("(1 + 2", "cannot parse"),
    ("\x00", "unexpected character"),
    ("\ud800", "unexpected character"),
    # sizes beyond the caps: refused before they are computed
    ("9**9**9", "digits"),
    ("2**10**10", "digits"),
    ("10^10^10", "digits"),
    ("2^(2^(2^(2^(2^2))))", "digits"),
    ("(1 + 1e-29)^(10^999)", "digits"),
    ("sqrt(2)^(10^6)", "digits"),
    ("10^1000", "digits"),
    ("10^999 * 10^999", "digits"),
    ("1 / 10^999 / 10^999", "digits"),
    ("1e999999", "out of range"),
    ("1e-999999", "out of range"),
    ("factorial(10**6)", "factorial(1000000) has more than 1000 digits"),
    ("factorial(450)", "more than 1000 digits"),
    ("factorial(factorial(10))", "more than 1000 digits"),
    ("factorial(factorial(factorial(5)))", "more than 1000 digits"),
    ("factorial(10^999)", "more than 1000 digits"),
    ("factorial(-1)", "negative"),
    ("factorial(2.5)", "whole numbers"),
    ("gcd(2.5, 5)", "whole numbers"),
    ("exp(10^6)", "exceeds"),
    ("round(1, 10^6)", "decimal places"),
    ("-" * 500 + "1", "deeper than 100 levels"),
    ("(" * 250 + "1" + ")" * 250, "cannot parse"),
    ("1" + "+1" * 200, "deeper than 100 levels"),
    ("max(" + ",".join(["1"] * 250) + ")", "more than 200 parts"),
    ("(" * 10_000 + "1" + ")" * 10_000, "limit is 512"),
    ("-(" * 10_000 + "1" + ")" * 10_000, "limit is 512"),
    ("1" * 1_000_000, "limit is 512"),
    # undefined
    ("1 / 0", "division by zero"),
    ("1 // 0", "division by zero"),
    ("5 % 0", "division by zero"),
    ("0^-1", "division by zero"),
    ("1 / (sqrt(2)^2 - 2)", "division by zero"),
    ("sqrt(-1)", "not a real number"),
    ("(-8)^(1/3)", "not a real number"),
    ("log(0)", "not a real number"),
    ("log(-1)", "not a real number"),
    ("log(8, 1)", "base"),
    # empty
    ("", "empty"),
    ("   ", "empty"),
    ("\n\t", "empty"),
]


@pytest.mark.parametrize(("expression", "reason"), HOSTILE, ids=lambda value: repr(value)[:40])
def test_hostile_expression_is_an_error_that_says_why_within_the_time_bound(expression, reason):
    start = time.perf_counter()
    result = CALCULATOR(expression, TASK)
    elapsed = time.perf_counter() - start
    assert not result.ok
    assert result.text.startswith("Error: ")
    assert reason in result.text
    assert elapsed < TIME_BOUND_S


@pytest.mark.parametrize(
    "expression",
    ["(" * 10_000 + "1" + ")" * 10_000, "-" * 10_000 + "1", "-(" * 10_000 + "1" + ")" * 10_000],
    ids=["parentheses", "minus signs", "negated parentheses"],
)
def test_ten_thousand_levels_of_nesting_are_an_error_even_without_the_length_limit(expression):
    calculator = Calculator(CalculatorLimits(max_chars=10**6))
    start = time.perf_counter()
    result = calculator(expression, TASK)
    assert not result.ok and result.text.startswith("Error: ")
    assert time.perf_counter() - start < TIME_BOUND_S


def test_a_long_flat_expression_is_refused_by_its_size_without_the_length_limit():
    calculator = Calculator(CalculatorLimits(max_chars=10**6))
    result = calculator("max(" + ",".join(["1"] * 10_000) + ")", TASK)
    assert result.text == "Error: the expression has more than 200 parts."


def test_the_time_limit_stops_an_evaluation_that_runs_past_it():
    calculator = Calculator(CalculatorLimits(time_limit_s=0.0))
    result = calculator("+".join(["sqrt(2)"] * 20), TASK)
    assert not result.ok and "took longer than" in result.text


@pytest.mark.parametrize(
    "template",
    [
        "__import__('pathlib').Path({path!r}).touch()",
        "open({path!r}, 'w').close()",
        "exec(\"open({path!r}, 'w').close()\")",
        "[open({path!r}, 'w').close() for _ in (1,)]",
        "(lambda: open({path!r}, 'w').close())()",
        "f\"{{open({path!r}, 'w').close()}}\"",
    ],
)
def test_code_in_an_expression_is_never_run(template, tmp_path):
    sentinel = tmp_path / "sentinel"
    expression = template.format(path=str(sentinel))
    # The sentinel works: Python itself creates the file from this very text.
    eval(expression)  # noqa: S307 - our own test string, run to prove the check can fail
    assert sentinel.exists()
    sentinel.unlink()
    result = CALCULATOR(expression, TASK)
    assert not result.ok and result.text.startswith("Error: ")
    assert not sentinel.exists()


def test_a_non_text_expression_is_an_error():
    for value in (None, 42, b"1+1"):
        result = CALCULATOR(value, TASK)
        assert not result.ok and "must be text" in result.text


def test_calculator_publishes_its_tag_name_and_json_schema():
    schema = CALCULATOR.schema["function"]
    assert (CALCULATOR.name, CALCULATOR.tag, CALCULATOR.argument) == (
        "calculator",
        "math_exp",
        "expression",
    )
    assert schema["name"] == "calculator"
    assert schema["parameters"]["required"] == ["expression"]


def test_calculator_pickles_with_its_limits():
    limits = CalculatorLimits(max_digits=50)
    restored = pickle.loads(pickle.dumps(Calculator(limits)))
    assert restored.limits == limits
    assert restored("10^60", TASK).text.startswith("Error: ")
    assert restored("10^40", TASK).text == "1" + "0" * 40


def make_env() -> SwirlEnv:
    return SwirlEnv(
        tasks=[TASK],
        tools=[Calculator()],
        system_prompt=CALCULATOR_PROMPT,
        max_steps=10,
        scorer=math_scores,
    )


def test_calculator_call_through_the_env_shows_the_result_and_the_answer_scores_1():
    env = make_env()
    env.reset(seed=0)
    observation, reward, terminated, truncated, info = env.step(
        "Multiply the two numbers. <math_exp>6 * 7</math_exp>"
    )
    assert "6 * 7 -> 42" in observation
    assert (reward, terminated, truncated) == (0.0, False, False)
    assert info["tool"] == "calculator" and info["tool_input"] == "6 * 7"
    observation, reward, terminated, truncated, info = env.step("<answer>42</answer>")
    assert (reward, terminated, truncated) == (1.0, True, False)
    assert info["answer"] == "42"


def test_the_gold_path_replayed_through_the_env_scores_1():
    env = make_env()
    env.reset(seed=0)
    for action in TASK.gold_path:
        observation, reward, terminated, truncated, info = env.step(action)
    assert "6 * 7 -> 42" in observation
    assert reward == 1.0 and terminated


def test_json_calculator_call_through_the_env_is_answered_like_a_tag():
    env = make_env()
    env.reset(seed=0)
    observation, *_ = env.step('{"name": "calculator", "arguments": {"expression": "6*7"}}')
    assert "6*7 -> 42" in observation


def test_hostile_expression_through_the_env_is_an_error_line_and_the_episode_goes_on():
    env = make_env()
    env.reset(seed=0)
    start = time.perf_counter()
    observation, reward, terminated, truncated, info = env.step("<math_exp>9**9**9</math_exp>")
    assert time.perf_counter() - start < TIME_BOUND_S
    assert "9**9**9 -> Error: the power would have about" in observation
    assert (reward, terminated, truncated) == (0.0, False, False)
    observation, reward, terminated, *_ = env.step("<answer>42</answer>")
    assert reward == 1.0 and terminated

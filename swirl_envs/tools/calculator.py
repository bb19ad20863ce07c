"""A safe calculator for model-written arithmetic (SWiRL's ``<math_exp>`` tool).

Model text is untrusted, and ``sympy.sympify`` / ``parse_expr`` run ``eval`` on
their input, so they never see it. The text is parsed with ``ast`` (mode
``"eval"``) and only a whitelist of nodes is evaluated: number literals, unary
``+``/``-``, ``+ - * / // % **``, parentheses, the constants ``pi`` and ``e``, and
calls of the functions in ``FUNCTIONS``. Values are sympy numbers built here:
exact ``Rational``s wherever the result is rational (``0.1 + 0.2`` is exactly
``0.3``, ``sqrt(16)`` is ``4``), ``Float``s with 30 significant digits where it is
not (``sqrt(2)``, ``log``, ``sin``, ``pi``).

A textual pre-pass first accepts what people write: ``^`` for power, ``×`` ``÷``
``−`` ``π``, thousands separators (``1,000`` outside a function call's
parentheses, where a comma cannot separate arguments), ``50%`` after a number
(``50/100``) and leading zeros (``007``).

Every cost is bounded before it is paid: the text's length, the syntax tree's
size and depth, the digits of every exact value (numerator and denominator), the
magnitude of every float, and the size of a power, factorial or exponential,
estimated with logarithms before it is computed. A wall-clock limit between
node evaluations is the last resort. Anything refused or undefined is a
``ToolResult(ok=False)`` whose text starts with ``Error:`` and says what was wrong.

Results (what follows ``EXPRESSION -> `` in the transcript): integers in full;
any other value rounded half-up to 10 significant digits with trailing zeros
dropped (``7 / 2 -> 3.5``, ``1 / 3 -> 0.3333333333``), in scientific notation
below 1e-6 or from 1e10 on, like ``%.10g``.
"""

from __future__ import annotations

import ast
import math
import re
import string
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation

import mpmath
import sympy

from swirl_envs.task import Task
from swirl_envs.tools.base import Tool, ToolResult

Number = sympy.Rational | sympy.Float
"""A calculator value: exact (``Rational``, ``Integer`` included) or approximate (``Float``)."""

WORKING_DIGITS = 30
SHOWN_DIGITS = 10
# A float result smaller than its operands by this factor is rounding noise
# (sqrt(2)**2 - 2, sin(pi)): it has no significant digit left, so it is 0.
_NOISE = sympy.Rational(1, 10 ** (WORKING_DIGITS - 3))
# A private mpmath context: changing the precision of the global one would leak into
# other code (and other threads).
_MPMATH = mpmath.MPContext()
_MPMATH.dps = WORKING_DIGITS + 10
_ALLOWED_CHARACTERS = frozenset(string.ascii_letters + string.digits + "_ +-*/%().,")
_UNICODE = str.maketrans({"×": "*", "⋅": "*", "∗": "*", "÷": "/", "−": "-", "–": "-", "π": "pi"})
_GROUPED_NUMBER = re.compile(r"(?<![\w.])\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\w.])")
_PERCENT = re.compile(r"(?<![\w.])(\d+(?:\.\d*)?|\.\d+)\s*%(?=\s*(?:$|[)*/,]))")
_SIGNED_REMAINDER = re.compile(r"%\s*[-+]")
_LEADING_ZEROS = re.compile(r"(?<![\w.])0+(?=\d)")
_SYNTAX_NAMES = {
    ast.Attribute: "attribute access",
    ast.Tuple: "a comma outside a function call",
    ast.Starred: "* unpacking",
    ast.GeneratorExp: "a generator expression",
    ast.BoolOp: "and/or",
    ast.Compare: "a comparison",
    ast.IfExp: "if/else",
    ast.Lambda: "lambda",
    ast.NamedExpr: "assignment",
    ast.Await: "await",
    ast.UnaryOp: "'not'",
}


class CalculationError(ValueError):
    """An expression the calculator refuses or cannot evaluate; the message tells the agent why."""


@dataclass(frozen=True)
class CalculatorLimits:
    """Bounds on the work one expression may cause.

    Attributes:
        max_chars: Longest accepted expression text.
        max_nodes: Most syntax-tree nodes (numbers, names, operations, calls).
        max_depth: Deepest nesting of the syntax tree (``1+2+...+n`` nests n levels).
        max_digits: Most digits in the numerator or denominator of an exact value,
            and the largest decimal exponent of a float's magnitude.
        time_limit_s: Wall-clock limit, checked between node evaluations.
    """

    max_chars: int = 512
    max_nodes: int = 200
    max_depth: int = 100
    max_digits: int = 1000
    time_limit_s: float = 0.5


def evaluate(expression: str, limits: CalculatorLimits | None = None) -> Number:
    """Evaluate untrusted ``expression`` under ``limits``.

    Raises:
        CalculationError: The expression is malformed, uses anything outside the
            whitelist, exceeds a limit, or is undefined (division by zero, ...).
    """
    limits = limits or CalculatorLimits()
    if not isinstance(expression, str):
        raise CalculationError(f"the expression must be text, not {type(expression).__name__}.")
    if len(expression) > limits.max_chars:
        raise CalculationError(
            f"the expression is {len(expression)} characters long; the limit is {limits.max_chars}."
        )
    source = _normalize(expression)
    if not source:
        raise CalculationError("the expression is empty.")
    tree = _parse(source)
    _check_shape(tree.body, limits)
    try:
        return _Evaluator(source, limits).value(tree.body)
    except CalculationError:
        raise
    except (ArithmeticError, TypeError, ValueError, RecursionError) as error:
        # A sympy corner case we did not foresee is still an answer to the agent, not a crash.
        raise CalculationError(
            f"the expression cannot be evaluated ({type(error).__name__})."
        ) from None


def format_number(value: Number) -> str:
    """Show ``value`` as a result: integers in full, other values to 10 significant digits."""
    if isinstance(value, sympy.Integer):
        return str(int(value))
    context = Context(prec=SHOWN_DIGITS, rounding=ROUND_HALF_UP)
    if isinstance(value, sympy.Rational):
        decimal = context.divide(Decimal(value.p), Decimal(value.q))
    else:
        decimal = context.plus(Decimal(str(value)))
    if decimal.is_zero():
        return "0"
    decimal = decimal.normalize(context)
    return format(decimal, "f" if -6 <= decimal.adjusted() < SHOWN_DIGITS else "e")


class Calculator(Tool):
    """The calculator tool: ``<math_exp>48 / 2</math_exp>`` is answered ``48 / 2 -> 24``.

    Args:
        limits: Bounds on the work one expression may cause.
    """

    name = "calculator"
    tag = "math_exp"
    argument = "expression"
    description = "Evaluate arithmetic: numbers, + - * / ^ // %, parentheses, sqrt, log, ..."
    argument_description = "The expression, e.g. (48 + 12) / 5 or sqrt(2) * 3^2."

    def __init__(self, limits: CalculatorLimits | None = None):
        self.limits = limits or CalculatorLimits()

    def __call__(self, expression: str, task: Task) -> ToolResult:
        """Evaluate ``expression``; any failure is an ``Error:`` result, never an exception."""
        try:
            return ToolResult(format_number(evaluate(expression, self.limits)))
        except CalculationError as error:
            return ToolResult(f"Error: {error}", ok=False)


def _normalize(expression: str) -> str:
    """Rewrite common notation into the Python syntax the parser reads (text only, nothing runs).

    Raises:
        CalculationError: A character outside the calculator's alphabet, or a
            ``%`` followed by a sign (``50% - 10`` could be a percent or a remainder).
    """
    text = " ".join(expression.translate(_UNICODE).split()).replace("^", "**")
    text = _drop_thousands_separators(text)
    text = _PERCENT.sub(r"(\1/100)", text)
    if _SIGNED_REMAINDER.search(text):
        raise CalculationError(
            "'%' before a sign is ambiguous: write x/100 for a percent, "
            "or a % (-b) for a remainder."
        )
    text = _LEADING_ZEROS.sub("", text)
    for character in text:
        if character not in _ALLOWED_CHARACTERS:
            raise CalculationError(
                f"unexpected character {character!r}; use numbers, + - * / ^ // %, "
                "parentheses and functions such as sqrt(x)."
            )
    return text


def _drop_thousands_separators(text: str) -> str:
    """Read ``1,000`` as 1000 where a comma cannot separate arguments: outside call parentheses."""
    inside_call = []
    open_parens: list[bool] = []  # for each open "(": does it start a call's arguments?
    previous = ""
    for character in text:
        inside_call.append(bool(open_parens) and open_parens[-1])
        if character == "(":
            open_parens.append(previous.isalnum() or previous == "_")
        elif character == ")" and open_parens:
            open_parens.pop()
        if not character.isspace():
            previous = character
    return _GROUPED_NUMBER.sub(
        lambda match: match[0] if inside_call[match.start()] else match[0].replace(",", ""), text
    )


def _parse(source: str) -> ast.Expression:
    try:
        return ast.parse(source, mode="eval")
    except SyntaxError as error:
        reason = (error.msg or "invalid syntax").split(". Perhaps")[0]
        where = f" (column {error.offset})" if error.offset else ""
        raise CalculationError(f"cannot parse the expression: {reason}{where}.") from None
    except (RecursionError, MemoryError):
        raise CalculationError("the expression is nested too deeply to parse.") from None


def _check_shape(root: ast.expr, limits: CalculatorLimits) -> None:
    """Bound the tree's size and depth before evaluating it (iteratively: no recursion yet)."""
    count, pending = 0, [(root, 1)]
    while pending:
        node, depth = pending.pop()
        count += 1
        if count > limits.max_nodes:
            raise CalculationError(f"the expression has more than {limits.max_nodes} parts.")
        if depth > limits.max_depth:
            raise CalculationError(f"the expression nests deeper than {limits.max_depth} levels.")
        children = ast.iter_child_nodes(node)
        pending.extend((child, depth + 1) for child in children if isinstance(child, ast.expr))


class _Evaluator:
    """Evaluates a checked tree; every value it returns has passed ``checked``."""

    def __init__(self, source: str, limits: CalculatorLimits):
        self.source = source
        self.limits = limits
        self.deadline = time.monotonic() + limits.time_limit_s

    def value(self, node: ast.expr) -> Number:
        if time.monotonic() > self.deadline:
            raise CalculationError(
                f"the calculation took longer than {self.limits.time_limit_s} s."
            )
        if isinstance(node, ast.Constant):
            return self.checked(self.literal(node))
        if isinstance(node, ast.Name):
            return _constant(node.id)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.UAdd | ast.USub):
            operand = self.value(node.operand)
            return -operand if isinstance(node.op, ast.USub) else operand
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            left, right = self.value(node.left), self.value(node.right)
            return self.checked(_BINARY[type(node.op)](left, right, self.limits))
        if isinstance(node, ast.Call):
            return self.checked(self.call(node))
        if isinstance(node, ast.BinOp):
            raise CalculationError(f"the operator {type(node.op).__name__} is not allowed.")
        raise CalculationError(_not_allowed(node))

    def literal(self, node: ast.Constant) -> Number:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, int | float):
            kind = "complex number" if isinstance(value, complex) else repr(value)
            raise CalculationError(f"{kind} is not allowed; use real numbers.")
        if isinstance(value, int):
            return sympy.Integer(value)
        # The literal's own digits, not the nearest binary float: 0.1 is exactly 1/10.
        text = ast.get_source_segment(self.source, node).replace("_", "")
        try:
            decimal = Decimal(text)
        except InvalidOperation:
            raise CalculationError(f"cannot read the number {text!r}.") from None
        if abs(decimal.adjusted()) > self.limits.max_digits:
            raise CalculationError(
                f"the number {text} is out of range (10^±{self.limits.max_digits} at most)."
            )
        return sympy.Rational(*decimal.as_integer_ratio())

    def call(self, node: ast.Call) -> Number:
        if not isinstance(node.func, ast.Name):
            if isinstance(node.func, ast.Constant | ast.BinOp | ast.UnaryOp | ast.Call):
                raise CalculationError("implicit multiplication is not supported; write 2*(3+4).")
            raise CalculationError(_not_allowed(node.func))
        name = node.func.id
        if name in _CONSTANTS:
            raise CalculationError(f"{name} is a constant, not a function.")
        if name not in FUNCTIONS:
            raise CalculationError(
                f"unknown function {name!r}; available: {', '.join(sorted(FUNCTIONS))}."
            )
        if node.keywords:
            raise CalculationError(f"{name}() takes no keyword arguments.")
        function = FUNCTIONS[name]
        if not function.min_args <= len(node.args) <= function.max_args:
            raise CalculationError(f"{name}() takes {function.arity}, got {len(node.args)}.")
        return function.apply([self.value(argument) for argument in node.args], self.limits)

    def checked(self, value: Number) -> Number:
        """Enforce the digit and magnitude caps on a freshly computed value."""
        digits = self.limits.max_digits
        if isinstance(value, sympy.Rational):
            if max(abs(value.p), value.q) >= 10**digits:
                raise CalculationError(
                    f"a number in the calculation has more than {digits} digits."
                )
            return value
        if not isinstance(value, sympy.Float) or not value.is_finite:
            raise CalculationError("the result is not a real number.")
        if abs(value) >= sympy.Integer(10) ** digits:
            raise CalculationError(f"a number in the calculation exceeds 10^{digits}.")
        if abs(value) < sympy.Rational(1, 10**digits):
            return sympy.Float(0, WORKING_DIGITS)  # underflow, as floating point does
        return value


def _approx(value: Number) -> sympy.Float:
    return sympy.Float(value, WORKING_DIGITS)


def _mpf(value: Number) -> mpmath.mpf:
    """``value`` as an mpmath number (40 significant digits)."""
    if isinstance(value, sympy.Rational):
        return _MPMATH.mpf(value.p) / value.q
    return _MPMATH.mpf(value)


def _chop(result: Number, scale: Number) -> Number:
    """Zero a float ``result`` that is rounding noise relative to ``scale``."""
    if isinstance(result, sympy.Float) and abs(result) <= abs(scale) * _NOISE:
        return sympy.Float(0, WORKING_DIGITS)
    return result


def _add(a: Number, b: Number, limits: CalculatorLimits) -> Number:
    return _chop(a + b, max(abs(a), abs(b)))


def _subtract(a: Number, b: Number, limits: CalculatorLimits) -> Number:
    return _chop(a - b, max(abs(a), abs(b)))


def _multiply(a: Number, b: Number, limits: CalculatorLimits) -> Number:
    return a * b


def _divide(a: Number, b: Number, limits: CalculatorLimits) -> Number:
    if b.is_zero:
        raise CalculationError("division by zero.")
    return a / b


def _floor_divide(a: Number, b: Number, limits: CalculatorLimits) -> Number:
    return sympy.floor(_divide(a, b, limits))


def _remainder(a: Number, b: Number, limits: CalculatorLimits) -> Number:
    """Python's ``%``: the result has the sign of ``b``."""
    if b.is_zero:
        raise CalculationError("remainder of a division by zero.")
    return a - b * sympy.floor(a / b)


def _power(base: Number, exponent: Number, limits: CalculatorLimits) -> Number:
    """``base ** exponent``: its size is estimated first; exact when rational and small enough."""
    if base.is_zero:
        if exponent < 0:
            raise CalculationError("division by zero (0 to a negative power).")
        return sympy.Integer(0 if exponent > 0 else 1)
    integer_exponent = isinstance(exponent, sympy.Integer)
    if base < 0 and not integer_exponent:
        raise CalculationError("a negative number to a fractional power is not a real number.")
    negative = base < 0 and integer_exponent and exponent % 2 == 1
    if (abs(base) - 1).is_zero:
        return sympy.Integer(-1 if negative else 1)
    # log10 |result| = exponent * log10 |base|, computed with log1p(|base| - 1) so that it
    # keeps its relative precision even when |base| is within 1e-1000 of 1.
    size = _mpf(exponent) * _MPMATH.log1p(_mpf(abs(base) - 1)) / _MPMATH.ln10
    if not size <= limits.max_digits:
        digits = int(size) + 1 if size < 10**6 else _MPMATH.nstr(size, 3)
        raise CalculationError(
            f"the power would have about {digits} digits; the limit is {limits.max_digits}."
        )
    if size < -limits.max_digits:
        return sympy.Float(0, WORKING_DIGITS)  # underflow, as floating point does
    if isinstance(base, sympy.Rational) and isinstance(exponent, sympy.Rational):
        exact = _exact_power(base, exponent, limits)
        if exact is not None:
            return exact
    magnitude = sympy.Float(_MPMATH.power(10, size), WORKING_DIGITS)
    return -magnitude if negative else magnitude


def _exact_power(
    base: sympy.Rational, exponent: sympy.Rational, limits: CalculatorLimits
) -> sympy.Rational | None:
    """The exact power when it is rational and its digits fit the cap, else None."""
    if abs(exponent) > 4 * limits.max_digits:  # |base| != 1, so at least 0.3 digits per unit
        return None
    if float(abs(exponent)) * math.log10(max(abs(base.p), base.q)) > limits.max_digits:
        return None
    numerator, numerator_exact = sympy.integer_nthroot(abs(base.p), exponent.q)
    denominator, denominator_exact = sympy.integer_nthroot(base.q, exponent.q)
    if not (numerator_exact and denominator_exact):
        return None
    root = sympy.Rational(numerator, denominator) * (1 if base > 0 else -1)
    return root**exponent.p


_BINARY: dict[type, Callable[[Number, Number, CalculatorLimits], Number]] = {
    ast.Add: _add,
    ast.Sub: _subtract,
    ast.Mult: _multiply,
    ast.Div: _divide,
    ast.FloorDiv: _floor_divide,
    ast.Mod: _remainder,
    ast.Pow: _power,
}

_CONSTANTS = {"pi": sympy.pi.evalf(WORKING_DIGITS), "e": sympy.E.evalf(WORKING_DIGITS)}


def _constant(name: str) -> Number:
    if name in _CONSTANTS:
        return _CONSTANTS[name]
    if name in FUNCTIONS:
        raise CalculationError(f"{name} is a function; call it as {name}(x).")
    raise CalculationError(f"unknown name {name!r}; the constants are pi and e.")


def _integer(value: Number, function: str) -> int:
    if not isinstance(value, sympy.Integer):
        raise CalculationError(f"{function}() needs whole numbers, got {format_number(value)}.")
    return int(value)


def _integers(function: Callable[..., int], args: list[Number], name: str) -> Number:
    return sympy.Integer(function(*(_integer(value, name) for value in args)))


def _sqrt(args: list[Number], limits: CalculatorLimits) -> Number:
    if args[0] < 0:
        raise CalculationError("the square root of a negative number is not a real number.")
    return _power(args[0], sympy.Rational(1, 2), limits)


def _round(args: list[Number], limits: CalculatorLimits) -> Number:
    """Round half away from zero (2.5 -> 3), to ``args[1]`` decimal places (default 0)."""
    places = _integer(args[1], "round") if len(args) > 1 else 0
    if abs(places) > limits.max_digits:
        raise CalculationError(f"round() takes at most {limits.max_digits} decimal places.")
    value = sympy.Rational(args[0])
    scale = sympy.Integer(10) ** places
    rounded = sympy.floor(abs(value) * scale + sympy.Rational(1, 2)) / scale
    return rounded if value >= 0 else -rounded


def _log(args: list[Number], limits: CalculatorLimits) -> Number:
    base = args[1] if len(args) > 1 else None
    if args[0] <= 0:
        raise CalculationError("the logarithm of a number <= 0 is not a real number.")
    if base is None:
        return sympy.log(_approx(args[0]))
    if base <= 0 or (base - 1).is_zero:
        raise CalculationError("a logarithm's base must be positive and not 1.")
    return sympy.log(_approx(args[0])) / sympy.log(_approx(base))


def _exp(args: list[Number], limits: CalculatorLimits) -> Number:
    if args[0] > limits.max_digits * math.log(10):
        raise CalculationError(f"exp() of {format_number(args[0])} exceeds 10^{limits.max_digits}.")
    return sympy.exp(_approx(args[0]))


def _trigonometric(
    function: Callable[[sympy.Float], sympy.Expr],
) -> Callable[[list[Number], CalculatorLimits], Number]:
    def apply(args: list[Number], limits: CalculatorLimits) -> Number:
        return _chop(function(_approx(args[0])), max(abs(args[0]), 1))

    return apply


def _factorial(args: list[Number], limits: CalculatorLimits) -> Number:
    n = _integer(args[0], "factorial")
    if n < 0:
        raise CalculationError("factorial() of a negative number is undefined.")
    if n > 10**6 or math.lgamma(n + 1) / math.log(10) > limits.max_digits:
        raise CalculationError(f"factorial({n}) has more than {limits.max_digits} digits.")
    return sympy.factorial(sympy.Integer(n))


@dataclass(frozen=True)
class _Function:
    min_args: int
    max_args: int
    apply: Callable[[list[Number], CalculatorLimits], Number]

    @property
    def arity(self) -> str:
        if self.min_args == self.max_args:
            return f"{self.min_args} argument{'s' if self.min_args > 1 else ''}"
        if self.max_args > self.min_args + 1:
            return f"at least {self.min_args} argument{'s' if self.min_args > 1 else ''}"
        return f"{self.min_args} or {self.max_args} arguments"


_MANY = 64  # "any number of arguments"; the tree's node limit bounds it anyway
FUNCTIONS: dict[str, _Function] = {
    "sqrt": _Function(1, 1, _sqrt),
    "abs": _Function(1, 1, lambda args, limits: abs(args[0])),
    "round": _Function(1, 2, _round),
    "floor": _Function(1, 1, lambda args, limits: sympy.floor(args[0])),
    "ceil": _Function(1, 1, lambda args, limits: sympy.ceiling(args[0])),
    "min": _Function(1, _MANY, lambda args, limits: min(args)),
    "max": _Function(1, _MANY, lambda args, limits: max(args)),
    "log": _Function(1, 2, _log),
    "ln": _Function(1, 1, _log),
    "log10": _Function(1, 1, lambda args, limits: _log([args[0], sympy.Integer(10)], limits)),
    "log2": _Function(1, 1, lambda args, limits: _log([args[0], sympy.Integer(2)], limits)),
    "exp": _Function(1, 1, _exp),
    "sin": _Function(1, 1, _trigonometric(sympy.sin)),
    "cos": _Function(1, 1, _trigonometric(sympy.cos)),
    "tan": _Function(1, 1, _trigonometric(sympy.tan)),
    "factorial": _Function(1, 1, _factorial),
    "gcd": _Function(2, _MANY, lambda args, limits: _integers(math.gcd, args, "gcd")),
    "lcm": _Function(2, _MANY, lambda args, limits: _integers(math.lcm, args, "lcm")),
}
"""The callable functions: name -> arity and implementation."""


def _not_allowed(node: ast.AST) -> str:
    what = _SYNTAX_NAMES.get(type(node), type(node).__name__)
    return (
        f"{what} is not allowed; use numbers, + - * / ^ // %, parentheses, pi, e "
        f"and the functions {', '.join(sorted(FUNCTIONS))}."
    )

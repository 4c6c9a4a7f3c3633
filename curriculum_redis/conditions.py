"""Stop conditions of a sequential curriculum: a tiny, safe expression language.

A condition such as ``"episodes>=500 & success>0.8"`` is read by a hand-written tokenizer and a
recursive-descent parser (no ``eval``, no ``ast``, no Python code is ever run) and compiled to a flat
program in reverse Polish notation that ``lua/stage_record.lua`` evaluates atomically on the server::

    >>> compile_condition("episodes>=500 & success>0.8").program
    (('var', 'episodes'), ('num', 500.0), ('op', '>='), ('var', 'success'), ('num', 0.8), ('op', '>'), ('op', 'and'))

Grammar (``!``/``not`` binds tighter than ``&``/``and``, which binds tighter than ``|``/``or``; a comparison
binds tightest and cannot be chained)::

    condition  := or
    or         := and (("|" | "or") and)*
    and        := not (("&" | "and") not)*
    not        := ("!" | "not") not | comparison
    comparison := operand (("<" | "<=" | ">" | ">=" | "==" | "!=") operand)?
    operand    := NUMBER | "-" NUMBER | VARIABLE | "(" or ")"

Values are typed: variables and numbers are numbers, comparisons and the logical operators give
booleans; ``&``, ``|`` and ``!`` take booleans, comparisons take numbers, and a condition is a boolean.

Variables (all about the *current stage*, since it was entered):

    episodes   episodes recorded in the stage
    successes  successes among them
    success    success rate over the stage's window (its last ``window`` outcomes; 0 when empty)
    window     episodes in the window (at most the stage's ``window`` size)
    score      mean score of the stage's episodes (0 before the first); an episode recorded without a
               score counts 1.0 for a success and 0.0 for a failure
    seconds    seconds since the stage was entered, by the Redis server's clock (``TIME``)

Every mistake is a :class:`ConditionError` (a :class:`~curriculum_redis.errors.ConfigError`) that names
the position (``.position``, 0-based; the message gives the 1-based column and a caret) and what was
expected.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from curriculum_redis.errors import ConfigError

__all__ = [
    "COMPARISONS",
    "MAX_CONDITION_LENGTH",
    "MAX_DEPTH",
    "MAX_PROGRAM_TOKENS",
    "VARIABLES",
    "Condition",
    "ConditionError",
    "Instruction",
    "compile_condition",
    "evaluate",
    "program_from_json",
    "program_to_json",
    "validate_program",
]

VARIABLES: tuple[str, ...] = ("episodes", "successes", "success", "window", "score", "seconds")
"""The variables a condition may use (the Lua evaluator knows exactly these)."""

COMPARISONS: tuple[str, ...] = (">=", ">", "<=", "<", "==", "!=")
LOGICAL: tuple[str, ...] = ("and", "or", "not")
OPERATORS: tuple[str, ...] = COMPARISONS + LOGICAL

MAX_CONDITION_LENGTH = 1000
"""Characters of a condition's text."""
MAX_DEPTH = 32
"""Nesting of parentheses and ``!``/``not``."""
MAX_PROGRAM_TOKENS = 256
"""Instructions of a compiled program (the Lua script refuses longer ones too)."""

Instruction = tuple[Literal["var"], str] | tuple[Literal["num"], float] | tuple[Literal["op"], str]
"""One step of a compiled program: push a variable, push a number, or apply an operator."""

_NUMBER = re.compile(r"(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SYMBOLS = (">=", "<=", "==", "!=", ">", "<", "&", "|", "!", "(", ")", "-")
_KEYWORDS = {"and": "&", "or": "|", "not": "!"}
_MISTAKES = {"=": "'==' (a single '=' is not an operator)", "&&": "'&' or 'and'", "||": "'|' or 'or'"}


class ConditionError(ConfigError):
    """A stop condition that cannot be compiled (or a compiled program that is malformed)."""

    def __init__(self, message: str, text: str | None = None, position: int | None = None) -> None:
        self.text = text
        self.position = position
        if text is not None and position is not None:
            message = f"invalid stop condition at position {position + 1}: {message}\n  {text}\n  {' ' * position}^"
        super().__init__(message)


# ------------------------------------------------------------------------------------------ tokens


@dataclass(frozen=True)
class _Token:
    kind: Literal["num", "name", "sym", "end"]
    text: str
    position: int

    def describe(self) -> str:
        if self.kind == "end":
            return "the end of the condition"
        if self.kind == "num":
            return f"the number {self.text}"
        if self.kind == "name":
            return f"{'the keyword' if self.text in _KEYWORDS else 'the name'} {self.text!r}"
        return f"{self.text!r}"


ASCII_DIGITS = frozenset("0123456789")


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in " \t\r\n":
            i += 1
            continue
        # ASCII digits only: str.isdigit() is also true of '²' and other digits no number here is made of.
        if c in ASCII_DIGITS or (c == "." and i + 1 < n and text[i + 1] in ASCII_DIGITS):
            match = _NUMBER.match(text, i)
            if match is None:
                raise ConditionError(f"malformed number at {text[i : i + 8]!r}", text, i)
            end = match.end()
            if end < n and (text[end].isalnum() or text[end] in "._"):
                raise ConditionError(f"malformed number {text[i : end + 1]!r}", text, i)
            tokens.append(_Token("num", match.group(), i))
            i = end
            continue
        if c.isascii() and (c.isalpha() or c == "_"):
            match = _NAME.match(text, i)
            if match is None:
                raise ConditionError(f"malformed name at {text[i : i + 8]!r}", text, i)
            tokens.append(_Token("name", match.group(), i))
            i = match.end()
            continue
        if text.startswith(("&&", "||"), i):
            raise ConditionError(f"unexpected {text[i : i + 2]!r}; did you mean {_MISTAKES[text[i : i + 2]]}?", text, i)
        symbol = next((s for s in _SYMBOLS if text.startswith(s, i)), None)
        if symbol is None and c == "=":
            raise ConditionError(f"unexpected '='; did you mean {_MISTAKES['=']}?", text, i)
        if symbol is None:
            raise ConditionError(
                f"unexpected character {c!r}; expected a variable, a number, a comparison "
                "(>= > <= < == !=), &, |, !, and, or, not, or parentheses",
                text,
                i,
            )
        tokens.append(_Token("sym", symbol, i))
        i += len(symbol)
    tokens.append(_Token("end", "", n))
    return tokens


# ------------------------------------------------------------------------------------------ parser


@dataclass(frozen=True)
class _Typed:
    """A parsed sub-expression: its code, its type and where it starts."""

    code: list[Instruction]
    kind: Literal["number", "boolean"]
    position: int
    text: str


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.i = 0
        self.depth = 0

    # helpers

    @property
    def token(self) -> _Token:
        return self.tokens[self.i]

    def fail(self, expected: str, token: _Token | None = None) -> ConditionError:
        token = token or self.token
        return ConditionError(f"expected {expected}, got {token.describe()}", self.text, token.position)

    def accept(self, *symbols: str) -> _Token | None:
        """The current token if it is one of ``symbols`` (a keyword counts as its symbol)."""
        token = self.token
        if token.kind == "sym" and token.text in symbols:
            self.i += 1
            return token
        if token.kind == "name" and _KEYWORDS.get(token.text) in symbols:
            self.i += 1
            return token
        return None

    def span(self, start: int) -> str:
        return self.text[start : self.token.position].strip()

    def boolean(self, operand: _Typed, role: str) -> list[Instruction]:
        if operand.kind != "boolean":
            raise ConditionError(
                f"expected a condition (e.g. {operand.text or 'episodes'} >= 100) {role}, "
                f"got the number {operand.text!r}",
                self.text,
                operand.position,
            )
        return operand.code

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ConditionError(f"nested more than {MAX_DEPTH} levels deep", self.text, self.token.position)

    # grammar

    def parse(self) -> list[Instruction]:
        if self.token.kind == "end":
            raise self.fail("a condition such as 'episodes>=500 & success>0.8'")
        result = self.parse_or()
        rest = self.tokens[self.i]
        if rest.kind != "end":
            if rest.text == ")":
                raise ConditionError("unmatched ')'", self.text, rest.position)
            raise self.fail("'&', 'and', '|', 'or' or the end of the condition")
        return self.boolean(result, "as the whole stop condition")

    def parse_or(self) -> _Typed:
        left = self.parse_and()
        while self.accept("|"):
            right = self.parse_and()
            code = self.boolean(left, "before '|'/'or'") + self.boolean(right, "after '|'/'or'") + [("op", "or")]
            left = _Typed(code, "boolean", left.position, self.span(left.position))
        return left

    def parse_and(self) -> _Typed:
        left = self.parse_not()
        while self.accept("&"):
            right = self.parse_not()
            code = self.boolean(left, "before '&'/'and'") + self.boolean(right, "after '&'/'and'") + [("op", "and")]
            left = _Typed(code, "boolean", left.position, self.span(left.position))
        return left

    def parse_not(self) -> _Typed:
        start = self.token
        if self.accept("!"):
            self.enter()
            operand = self.parse_not()
            self.depth -= 1
            code = [*self.boolean(operand, "after '!'/'not'"), ("op", "not")]
            return _Typed(code, "boolean", start.position, self.span(start.position))
        return self.parse_comparison()

    def parse_comparison(self) -> _Typed:
        left = self.parse_operand()
        operator = self.token
        if operator.kind == "sym" and operator.text in COMPARISONS:
            self.i += 1
            right = self.parse_operand()
            for side in (left, right):
                if side.kind != "number":
                    raise ConditionError(
                        f"expected a number or a variable on each side of {operator.text!r}, got a condition",
                        self.text,
                        side.position,
                    )
            if self.token.kind == "sym" and self.token.text in COMPARISONS:
                raise ConditionError(
                    "comparisons cannot be chained; join them with '&' (e.g. 10 <= episodes & episodes < 20)",
                    self.text,
                    self.token.position,
                )
            code = [*left.code, *right.code, ("op", operator.text)]
            return _Typed(code, "boolean", left.position, self.span(left.position))
        return left

    def parse_operand(self) -> _Typed:
        token = self.token
        if token.kind == "num":
            self.i += 1
            return _Typed([("num", self.number(token, negative=False))], "number", token.position, token.text)
        if token.kind == "sym" and token.text == "-":
            self.i += 1
            if self.token.kind != "num":
                raise self.fail("a number after '-'")
            number = self.token
            self.i += 1
            return _Typed([("num", self.number(number, negative=True))], "number", token.position, "-" + number.text)
        if token.kind == "name" and token.text not in _KEYWORDS:
            if token.text not in VARIABLES:
                raise ConditionError(
                    f"unknown variable {token.text!r}; the variables are {', '.join(VARIABLES)}",
                    self.text,
                    token.position,
                )
            self.i += 1
            return _Typed([("var", token.text)], "number", token.position, token.text)
        if self.accept("("):
            self.enter()
            inner = self.parse_or()
            self.depth -= 1
            if not self.accept(")"):
                raise self.fail(f"')' to close the '(' at position {token.position + 1}")
            return _Typed(inner.code, inner.kind, token.position, self.span(token.position))
        raise self.fail("a variable, a number, '!', 'not' or '('")

    def number(self, token: _Token, negative: bool) -> float:
        value = float(token.text)
        if not math.isfinite(value):
            raise ConditionError(f"the number {token.text} is out of range", self.text, token.position)
        return -value if negative else value


# ------------------------------------------------------------------------------------------ programs


@dataclass(frozen=True)
class Condition:
    """A compiled stop condition."""

    text: str
    program: tuple[Instruction, ...]

    def to_json(self) -> str:
        """The program as compact JSON, as stored in ``{cr:<ns>}:stage:config`` (``"<i>:program"``)."""
        return program_to_json(self.program)

    def evaluate(self, values: Mapping[str, float]) -> bool:
        return evaluate(self.program, values)


def compile_condition(text: str) -> Condition:
    """Parse and compile ``text``; raises :class:`ConditionError` naming the position of the mistake."""
    if not isinstance(text, str):
        raise ConditionError(f"a stop condition must be a string, got {type(text).__name__}")
    if len(text) > MAX_CONDITION_LENGTH:
        raise ConditionError(f"a stop condition has at most {MAX_CONDITION_LENGTH} characters, got {len(text)}")
    program = tuple(_Parser(text).parse())
    if len(program) > MAX_PROGRAM_TOKENS:
        raise ConditionError(
            f"the stop condition compiles to {len(program)} instructions, at most {MAX_PROGRAM_TOKENS} are allowed"
        )
    validate_program(program)
    return Condition(text, program)


def validate_program(program: Sequence[Any]) -> tuple[Instruction, ...]:
    """Check a compiled program (as ``lua/stage_*.lua`` do): known instructions, finite numbers, no stack
    underflow, operand types right, one boolean left. Returns it as a tuple of instructions."""
    if isinstance(program, str | bytes) or not isinstance(program, Sequence):
        raise ConditionError(f"a program must be a list of instructions, got {type(program).__name__}")
    if not 1 <= len(program) <= MAX_PROGRAM_TOKENS:
        raise ConditionError(f"a program has 1 to {MAX_PROGRAM_TOKENS} instructions, got {len(program)}")
    stack: list[str] = []
    out: list[Instruction] = []
    for i, step in enumerate(program):
        where = f"instruction {i + 1}"
        if isinstance(step, str | bytes) or not isinstance(step, Sequence) or len(step) != 2:
            raise ConditionError(f"{where}: expected a [kind, argument] pair, got {step!r}")
        kind, arg = step
        if kind == "var":
            if arg not in VARIABLES:
                raise ConditionError(f"{where}: unknown variable {arg!r}")
            stack.append("number")
            out.append(("var", str(arg)))
        elif kind == "num":
            if isinstance(arg, bool) or not isinstance(arg, int | float) or not math.isfinite(arg):
                raise ConditionError(f"{where}: expected a finite number, got {arg!r}")
            stack.append("number")
            out.append(("num", float(arg)))
        elif kind == "op":
            if arg not in OPERATORS:
                raise ConditionError(f"{where}: unknown operator {arg!r}")
            arity, operand_type = (1, "boolean") if arg == "not" else (2, "number" if arg in COMPARISONS else "boolean")
            if len(stack) < arity:
                raise ConditionError(f"{where}: {arg!r} needs {arity} operand(s), the stack holds {len(stack)}")
            if any(t != operand_type for t in stack[-arity:]):
                raise ConditionError(f"{where}: {arg!r} takes {operand_type}s")
            del stack[-arity:]
            stack.append("boolean")
            out.append(("op", str(arg)))
        else:
            raise ConditionError(f"{where}: unknown instruction kind {kind!r} (expected var, num or op)")
    if stack != ["boolean"]:
        raise ConditionError(f"a program must leave one boolean, it leaves {stack}")
    return tuple(out)


def evaluate(program: Sequence[Instruction], values: Mapping[str, float]) -> bool:
    """Run a compiled program on the variables' ``values`` (the reference for the Lua evaluator)."""
    stack: list[float | bool] = []
    for kind, arg in validate_program(program):
        if kind == "var":
            stack.append(float(values[str(arg)]))
        elif kind == "num":
            stack.append(float(arg))
        elif arg == "not":
            stack.append(not stack.pop())
        else:
            b, a = stack.pop(), stack.pop()
            stack.append(_apply(str(arg), a, b))
    return bool(stack[0])


def _apply(op: str, a: float | bool, b: float | bool) -> bool:
    if op == "and":
        return bool(a) and bool(b)
    if op == "or":
        return bool(a) or bool(b)
    if op == ">=":
        return a >= b
    if op == ">":
        return a > b
    if op == "<=":
        return a <= b
    if op == "<":
        return a < b
    if op == "==":
        return a == b
    return a != b


def program_to_json(program: Sequence[Instruction]) -> str:
    return json.dumps([list(step) for step in validate_program(program)], separators=(",", ":"))


def program_from_json(data: str) -> tuple[Instruction, ...]:
    try:
        decoded = json.loads(data)
    except ValueError as exc:
        raise ConditionError(f"a program must be JSON: {exc}") from exc
    return validate_program(decoded)

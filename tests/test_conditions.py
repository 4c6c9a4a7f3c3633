"""Stop conditions: the tokenizer, the parser, the compiled RPN programs and their evaluator (no Redis)."""

from __future__ import annotations

import json
import math
import random
from typing import Any

import pydantic
import pytest

from curriculum_redis.algorithms.sequential import StageConfig, StageCurriculumConfig
from curriculum_redis.conditions import (
    MAX_DEPTH,
    MAX_PROGRAM_TOKENS,
    VARIABLES,
    ConditionError,
    compile_condition,
    evaluate,
    program_from_json,
    program_to_json,
    validate_program,
)
from curriculum_redis.errors import ConfigError


def V(name: str) -> tuple[str, str]:
    return ("var", name)


def N(value: float) -> tuple[str, float]:
    return ("num", float(value))


def O(op: str) -> tuple[str, str]:  # noqa: E743
    return ("op", op)


def program(text: str) -> list[tuple[str, Any]]:
    return [tuple(step) for step in compile_condition(text).program]  # type: ignore[misc]


# ------------------------------------------------------------------------------------------ compiling


def test_the_example_compiles_to_rpn() -> None:
    assert program("episodes>=500 & success>0.8") == [
        V("episodes"), N(500), O(">="), V("success"), N(0.8), O(">"), O("and"),
    ]  # fmt: skip


@pytest.mark.parametrize("op", [">=", ">", "<=", "<", "==", "!="])
def test_every_comparison(op: str) -> None:
    assert program(f"episodes {op} 3") == [V("episodes"), N(3), O(op)]
    assert program(f"2{op}score") == [N(2), V("score"), O(op)]


def test_every_variable() -> None:
    for name in VARIABLES:
        assert program(f"{name} > 0") == [V(name), N(0), O(">")]


@pytest.mark.parametrize(
    ("text", "value"),
    [("500", 500.0), ("0.8", 0.8), (".5", 0.5), ("5.", 5.0), ("1e3", 1000.0), ("2.5E-2", 0.025), ("-1.5", -1.5),
     ("- 2", -2.0), ("007", 7.0)],
)  # fmt: skip
def test_numbers(text: str, value: float) -> None:
    assert program(f"score >= {text}") == [V("score"), N(value), O(">=")]


def test_keywords_and_symbols_are_the_same_operators() -> None:
    a, b = "episodes>1", "success<0.5"
    assert program(f"{a} & {b}") == program(f"{a} and {b}")
    assert program(f"{a} | {b}") == program(f"{a} or {b}")
    assert program(f"!{a}") == program(f"not {a}") == [V("episodes"), N(1), O(">"), O("not")]
    assert program(f"  {a}\t&\n{b} ") == program(f"{a}&{b}")


def test_precedence_not_over_and_over_or() -> None:
    a, b, c = "episodes>1", "success>0.5", "score>2"
    pa, pb, pc = program(a), program(b), program(c)
    # a | b & c  ==  a | (b & c)
    assert program(f"{a} | {b} & {c}") == pa + pb + pc + [O("and"), O("or")]
    # a & b | c  ==  (a & b) | c
    assert program(f"{a} & {b} | {c}") == pa + pb + [O("and")] + pc + [O("or")]
    # !a & b  ==  (!a) & b
    assert program(f"!{a} & {b}") == [*pa, O("not"), *pb, O("and")]
    # not a or b  ==  (not a) or b
    assert program(f"not {a} or {b}") == [*pa, O("not"), *pb, O("or")]
    # a comparison binds tighter than not: !episodes > 1  ==  !(episodes > 1)
    assert program("!episodes > 1") == [*pa, O("not")]
    # left-associative chains
    assert program(f"{a} & {b} & {c}") == pa + pb + [O("and")] + pc + [O("and")]
    assert program(f"{a} | {b} | {c}") == pa + pb + [O("or")] + pc + [O("or")]
    assert program(f"!!{a}") == [*pa, O("not"), O("not")]


def test_parentheses_override_precedence() -> None:
    a, b, c = "episodes>1", "success>0.5", "score>2"
    pa, pb, pc = program(a), program(b), program(c)
    assert program(f"({a} | {b}) & {c}") == pa + pb + [O("or")] + pc + [O("and")]
    assert program(f"!({a} & {b})") == pa + pb + [O("and"), O("not")]
    assert program(f"((({a})))") == pa
    assert program("(episodes) >= (500)") == [V("episodes"), N(500), O(">=")]


# ------------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("text", "position", "message"),
    [
        ("", 0, "expected a condition"),
        ("   ", 3, "expected a condition"),
        ("episodes>=", 10, "expected a variable, a number"),
        ("episodes >= 500 &", 17, "expected a variable, a number"),
        ("episodes = 5", 9, "did you mean '=='"),
        ("episodes>1 && success>0", 11, "did you mean '&' or 'and'"),
        ("episodes>1 || success>0", 11, "did you mean '|' or 'or'"),
        ("episode >= 5", 0, "unknown variable 'episode'; the variables are episodes, successes"),
        ("episodes>=5 & Success>0.5", 14, "unknown variable 'Success'"),
        ("episodes", 0, "expected a condition (e.g. episodes >= 100) as the whole stop condition"),
        ("500", 0, "expected a condition"),
        ("episodes & success > 0.5", 0, "before '&'/'and', got the number 'episodes'"),
        ("success > 0.5 | 3", 16, "after '|'/'or', got the number '3'"),
        ("!episodes", 1, "after '!'/'not'"),
        ("(episodes > 1) > 2", 0, "on each side of '>', got a condition"),
        ("1 < episodes < 5", 13, "comparisons cannot be chained"),
        ("(1 < episodes <= 5)", 14, "comparisons cannot be chained"),
        ("(episodes > 1", 13, "expected ')' to close the '(' at position 1"),
        ("episodes > 1)", 12, "unmatched ')'"),
        ("episodes > 1 success > 0", 13, "expected '&', 'and', '|', 'or' or the end"),
        ("episodes >= 12abc", 12, "malformed number '12a'"),
        ("episodes >= 1.2.3", 12, "malformed number"),
        ("episodes >= 1e999", 12, "out of range"),
        ("episodes >= -success", 13, "a number after '-'"),
        ("episodes >= 5 and", 17, "expected a variable, a number"),
        ("episodes >= 5 and or success > 1", 18, "got the keyword 'or'"),
        ("épisodes > 1", 0, "unexpected character 'é'"),
        ("episodes + 1 > 2", 9, "unexpected character '+'"),
        ("()", 1, "got ')'"),
    ],
)
def test_errors_name_the_position_and_what_was_expected(text: str, position: int, message: str) -> None:
    with pytest.raises(ConditionError) as info:
        compile_condition(text)
    error = info.value
    assert isinstance(error, ConfigError)
    assert error.position == position, str(error)
    assert message in str(error)
    assert f"at position {position + 1}:" in str(error)
    assert str(error).endswith("\n  " + " " * position + "^")  # a caret under the mistake


@pytest.mark.parametrize(
    "code",
    [
        "__import__('os')",
        '__import__("os").system("rm -rf /")',
        "__import__",
        "os.system('x')",
        "episodes.__class__",
        "open('/etc/passwd')",
        "lambda: 1",
        "[x for x in ()]",
        "episodes if 1 else 2",
        "exec('1')",
        "eval('1')",
        "{'a': 1}",
        "episodes >= 1; import os",
        "episodes >= len('x')",
        "True",
        "episodes >= 1 and True",
        "episodes >= 0x10",
        "`ls`",
        "episodes >= 1 # comment",
        "redis.call('FLUSHALL')",
    ],
)
def test_code_is_refused(code: str) -> None:
    with pytest.raises(ConditionError, match="invalid stop condition at position"):
        compile_condition(code)


def test_limits() -> None:
    deep = "(" * (MAX_DEPTH + 1) + "episodes>1" + ")" * (MAX_DEPTH + 1)
    with pytest.raises(ConditionError, match="nested more than"):
        compile_condition(deep)
    ok = "(" * MAX_DEPTH + "episodes>1" + ")" * MAX_DEPTH
    assert program(ok) == [V("episodes"), N(1), O(">")]
    with pytest.raises(ConditionError, match="nested more than"):
        compile_condition("!" * (MAX_DEPTH + 1) + "episodes>1")
    with pytest.raises(ConditionError, match="at most 1000 characters"):
        compile_condition("episodes>1" + " " * 1000)
    long = " & ".join(["episodes>1"] * 70)  # 70 * 3 + 69 instructions
    with pytest.raises(ConditionError, match=f"at most {MAX_PROGRAM_TOKENS} are allowed"):
        compile_condition(long)
    with pytest.raises(ConditionError, match="must be a string"):
        compile_condition(5)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------ evaluation


STATE = {"episodes": 500.0, "successes": 420.0, "success": 0.85, "window": 100.0, "score": -1.5, "seconds": 30.0}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("episodes>=500 & success>0.8", True),  # 500 >= 500 and 0.85 > 0.8
        ("episodes>500 & success>0.8", False),  # 500 > 500 is false
        ("episodes<=500", True),
        ("episodes<500", False),
        ("episodes==500", True),
        ("episodes!=500", False),
        ("successes == 420 and window == 100", True),
        ("score < -1", True),  # -1.5 < -1
        ("score >= -1.5 & score <= -1.5", True),
        ("seconds > 60 | episodes >= 500", True),  # false | true
        ("seconds > 60 | episodes > 500", False),  # false | false
        ("!(seconds > 60)", True),
        ("not seconds > 20", False),
        ("episodes > 1000 | success > 0.8 & score > 0", False),  # F | (T & F) = F
        ("(episodes > 1000 | success > 0.8) & score < 0", True),  # (F | T) & T = T
        ("episodes > 1000 | success > 0.8 & score < 0", True),  # F | (T & T) = T
        ("!episodes > 1000 & !(success < 0.5)", True),  # !F & !F
        ("0.85 == success", True),
        ("successes / 1", None),  # not a condition: refused (None marks an expected error)
    ],
)
def test_evaluator_matches_hand_computed_truth(text: str, expected: bool | None) -> None:
    if expected is None:
        with pytest.raises(ConditionError):
            compile_condition(text)
        return
    condition = compile_condition(text)
    assert condition.evaluate(STATE) is expected
    assert evaluate(condition.program, STATE) is expected


def _random_expr(rng: random.Random, depth: int) -> tuple[str, Any]:
    """A random boolean AST rendered with minimal (or extra) parentheses, and the AST itself."""
    if depth == 0 or rng.random() < 0.3:
        left = rng.choice(VARIABLES) if rng.random() < 0.8 else str(rng.choice([0, 1, 2.5, 100]))
        right = str(rng.choice([0, 0.5, 1, 3, 10, 100, -1])) if rng.random() < 0.8 else rng.choice(VARIABLES)
        op = rng.choice([">=", ">", "<=", "<", "==", "!="])
        return f"{left} {op} {right}", ("cmp", op, left, right)
    kind = rng.choice(["and", "or", "not"])
    if kind == "not":
        text, ast = _random_expr(rng, depth - 1)
        return f"{rng.choice(['!', 'not '])}({text})", ("not", ast)
    (lt, la), (rt, ra) = _random_expr(rng, depth - 1), _random_expr(rng, depth - 1)
    symbol = rng.choice({"and": ["&", "and"], "or": ["|", "or"]}[kind])
    return f"({lt}) {symbol} ({rt})", (kind, la, ra)


def _eval_ast(ast: Any, values: dict[str, float]) -> bool:
    def operand(token: str) -> float:
        return values[token] if token in values else float(token)

    if ast[0] == "cmp":
        _, op, left, right = ast
        a, b = operand(left), operand(right)
        return {">=": a >= b, ">": a > b, "<=": a <= b, "<": a < b, "==": a == b, "!=": a != b}[op]
    if ast[0] == "not":
        return not _eval_ast(ast[1], values)
    if ast[0] == "and":
        return _eval_ast(ast[1], values) and _eval_ast(ast[2], values)
    return _eval_ast(ast[1], values) or _eval_ast(ast[2], values)


def test_compiled_programs_agree_with_a_direct_evaluation_of_random_conditions() -> None:
    rng = random.Random(0)
    for _ in range(500):
        text, ast = _random_expr(rng, 4)
        condition = compile_condition(text)
        for _ in range(5):
            values = {name: float(rng.choice([0, 0.5, 1, 3, 10, 100, -1, 7])) for name in VARIABLES}
            assert condition.evaluate(values) is _eval_ast(ast, values), (text, values)


# ------------------------------------------------------------------------------------------ programs


def test_program_json_round_trip() -> None:
    condition = compile_condition("episodes>=500 & (success>0.8 | score == -2)")
    text = condition.to_json()
    assert json.loads(text)[:3] == [["var", "episodes"], ["num", 500.0], ["op", ">="]]
    assert program_from_json(text) == condition.program
    assert program_to_json(program_from_json(text)) == text
    assert {arg for kind, arg in condition.program if kind == "var"} == {"episodes", "success", "score"}


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ([], "1 to 256 instructions"),
        ([["var", "episodes"]] * 300, "1 to 256 instructions"),
        ("episodes", "list of instructions"),
        ([["var", "episodes"]], "leave one boolean"),  # a number, not a condition
        ([["var", "episodes"], ["num", 1], ["op", ">"], ["var", "score"]], "leave one boolean"),
        ([["op", "not"]], "needs 1 operand"),
        ([["num", 1], ["op", ">"]], "needs 2 operand"),
        ([["var", "episodes"], ["num", 1], ["op", "and"]], "takes booleans"),
        ([["var", "episodes"], ["op", "not"]], "takes booleans"),
        ([["var", "episodes"], ["num", 1], ["op", ">"], ["num", 1], ["op", ">"]], "takes numbers"),
        ([["var", "__import__"], ["num", 1], ["op", ">"]], "unknown variable"),
        ([["num", "1"], ["num", 1], ["op", ">"]], "finite number"),
        ([["num", True], ["num", 1], ["op", ">"]], "finite number"),
        ([["num", math.nan], ["num", 1], ["op", ">"]], "finite number"),
        ([["num", math.inf], ["num", 1], ["op", ">"]], "finite number"),
        ([["num", 1], ["num", 1], ["op", "+"]], "unknown operator"),
        ([["call", "os.system"]], "unknown instruction kind"),
        ([["num", 1, 2]], "pair"),
        (["num"], "pair"),
    ],
)
def test_malformed_programs_are_refused(bad: Any, message: str) -> None:
    with pytest.raises(ConditionError, match=message):
        validate_program(bad)
    with pytest.raises(ConditionError):
        evaluate(bad, dict.fromkeys(VARIABLES, 0.0))


def test_program_from_json_refuses_bad_json() -> None:
    with pytest.raises(ConditionError, match="must be JSON"):
        program_from_json("[[")


# ------------------------------------------------------------------------------------------ in a config


def test_stage_config_with_a_condition_round_trips_and_is_fingerprinted() -> None:
    plain = StageCurriculumConfig(stages=[StageConfig(name="a"), StageConfig(name="b")])
    with_condition = StageCurriculumConfig(
        stages=[StageConfig(name="a", stop_condition="episodes>=500 & success>0.8"), StageConfig(name="b")]
    )
    other_condition = StageCurriculumConfig(
        stages=[StageConfig(name="a", stop_condition="episodes>=501 & success>0.8"), StageConfig(name="b")]
    )
    again = StageCurriculumConfig.model_validate_json(with_condition.model_dump_json())
    assert again == with_condition
    assert again.stages[0].stop_condition == "episodes>=500 & success>0.8"
    assert again.fingerprint() == with_condition.fingerprint()
    assert len({plain.fingerprint(), with_condition.fingerprint(), other_condition.fingerprint()}) == 3
    # A stage without a condition leaves the field out of what is stored and fingerprinted, so namespaces
    # whose stages have no condition keep matching their stored fingerprint.
    assert "stop_condition" not in plain.stages_json()
    assert '"stop_condition":"episodes>=500 & success>0.8"' in with_condition.stages_json()
    condition = with_condition.stages[0].condition()
    assert condition is not None and condition.program[0] == ("var", "episodes")
    assert plain.stages[0].condition() is None


def test_stage_config_refuses_a_bad_condition_with_its_position() -> None:
    with pytest.raises(pydantic.ValidationError, match=r"at position 15: unknown variable 'sucess'"):
        StageConfig(name="a", stop_condition="episodes>=5 & sucess>0.8")
    with pytest.raises(pydantic.ValidationError, match="invalid stop condition"):
        StageCurriculumConfig.model_validate({"stages": [{"name": "a", "stop_condition": "__import__('os')"}]})
    with pytest.raises(pydantic.ValidationError):
        StageConfig(name="a", stop_condition="")

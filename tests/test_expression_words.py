"""Expression problems read as plain sentences: a corpus of broken expressions, each with the words a person reads."""

from __future__ import annotations

from typing import Any

import pytest

from flowboard.errors import ExpressionError
from flowboard.expressions import compile_string, evaluate

JARGON = ("template", "token", "print statement", "dict object", "chunk", "Encountered", "undefined", "TypeError",
          "unexpected")

SYNTAX = [
    ("{{ item.days + }}", "the expression is not finished: something is missing after `+`"),
    ("{{ item.days == }}", "the expression is not finished: something is missing after `==`"),
    ("{{ item.ok and }}", "the expression is not finished: something is missing after `and`"),
    ("Hi {{ item.a * }} and {{ item.b }}", "the expression is not finished: something is missing after `*`"),
    ("Hello {{ item.name ", "the expression is not closed: end it with }}"),
    ("{{ (item.days + 1 }}", "a `(` is opened but never closed: add `)`"),
    ("{{ item['first name' }}", "a `[` is opened but never closed: add `]`"),
    ("{{ item.days ]] }}", "there is a `]` with no opening `[`"),
    ("{{ item.first item.last }}", "two values stand side by side"),
    ("{{ item.days $ 2 }}", "`$` cannot be used in an expression"),
    ("{{ 'abc }}", "a text in quotes is not closed"),
    ("{{ item.name | shout }}", "`shout` is not a filter expressions know"),
    ("{% repeat %}", "`{% repeat %}` is not something expressions understand"),
    ("{{ }}", "the expression is empty"),
]
RUNTIME = [
    ("{{ nodes['Look up'].items }}", "there is no `Look up` here"),
    ("{{ 10 / item.zero }}", "a division by zero"),
    ("{{ item.name - 1 }}", "`-` cannot combine text with a number"),
    ("{{ items[3].days }}", "the list has no item 3 (counting starts at 0)"),
    ("{{ employee.name }}", "`employee` is not known here: start with item, items, nodes, input or run"),
    ("{{ item.days.total.x }}", "a number has no field `total`"),
]
SCOPE: dict[str, Any] = {"item": {"name": "Ada", "zero": 0, "days": 3}, "items": [], "nodes": {}}


@pytest.mark.parametrize(("text", "words"), SYNTAX, ids=[t for t, _ in SYNTAX])
def test_a_syntax_problem_says_what_to_fix(text: str, words: str) -> None:
    with pytest.raises(ExpressionError) as info:
        compile_string(text)
    assert words in info.value.message
    assert not any(j in info.value.message for j in JARGON), info.value.message


@pytest.mark.parametrize(("text", "words"), RUNTIME, ids=[t for t, _ in RUNTIME])
def test_a_failure_while_working_it_out_says_what_went_wrong(text: str, words: str) -> None:
    with pytest.raises(ExpressionError) as info:
        evaluate(compile_string(text), SCOPE)
    assert words in info.value.message
    assert not any(j in info.value.message for j in JARGON), info.value.message

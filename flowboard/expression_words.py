"""Expression problems in plain words: what a person reads instead of Jinja's parser and runtime messages.

`{{ item.days + }}` is "the expression is not finished: something is missing after `+`", not "unexpected 'end of
template'"; `nodes['Look up'].x` on a missing node is "there is no `Look up` here", not "'dict object' has no
attribute". Anything not recognised keeps its own text, without Jinja's jargon words.
"""

from __future__ import annotations

import re

_OPERATORS = ("==", "!=", ">=", "<=", "//", "**", "+", "-", "*", "/", "%", "<", ">", "~", "|", ",", ".", "(", "[",
              "and", "or", "not", "in", "is", "if", "else")
_EXPR = re.compile(r"{{(.*?)(}}|$)", re.DOTALL)
_OPENERS = {"(": ")", "[": "]", "{": "}"}
_TYPE_WORDS = {"str": "text", "int": "a number", "float": "a number", "bool": "true/false",
               "NoneType": "nothing (null)", "dict": "an object", "list": "a list",
               "Undefined": "nothing (the field is missing)"}


def syntax_message(text: str, jinja_message: str) -> str:
    """A sentence for a Jinja syntax error in `text` (a config string with `{{ … }}` parts)."""
    message = jinja_message.strip().rstrip(".")
    if "{{" in text and text.count("{{") > text.count("}}"):
        return "the expression is not closed: end it with }}"
    if text.count("{%") > text.count("%}"):
        return "the block is not closed: end it with %}"
    inner = [m.group(1) for m in _EXPR.finditer(text)]
    bad = next((part for part in inner if _unfinished(part) or _unbalanced(part)), inner[-1] if inner else text)
    source = bad.strip()
    if not source and "end of" in message:
        return "the expression is empty: write what it should give between {{ and }}, e.g. {{ item.email }}"
    opened = _unbalanced(source)
    if opened:
        return f"a `{opened}` is opened but never closed: add `{_OPENERS[opened]}`"
    if "end of" in message or message.startswith("unexpected 'end"):
        last = _unfinished(source)
        if last:
            return f"the expression is not finished: something is missing after `{last}`"
        return "the expression is not finished: something is missing at its end"
    char = re.match(r"unexpected char (['\"])(.+?)\1", message)
    if char:
        if char.group(2) in "'\"":
            return "a text in quotes is not closed: end it with the same quote mark"
        return f"`{char.group(2)}` cannot be used in an expression"
    if message == "chunk after expression" or message.startswith("expected token 'end of print statement'"):
        return "two values stand side by side: put an operator between them (+, -, ~, and, or) or remove one"
    closer = re.match(r"unexpected '([)\]}])'", message)
    if closer:
        opener = next(o for o, c in _OPENERS.items() if c == closer.group(1))
        return f"there is a `{closer.group(1)}` with no opening `{opener}`"
    unknown = re.match(r"No (filter|test) named '(.+?)'", message)
    if unknown:
        return f"`{unknown.group(2)}` is not a {unknown.group(1)} expressions know: check its spelling"
    tag = re.match(r"Encountered unknown tag '(.+?)'", message)
    if tag:
        return f"`{{% {tag.group(1)} %}}` is not something expressions understand: use if, for or set"
    return "the expression cannot be read: " + _dejargon(message)


def runtime_message(exc: BaseException) -> str:
    """A sentence for an expression that failed while it was worked out."""
    text = getattr(exc, "message", None) or str(exc)
    missing = re.match(r"'(\w+) object' has no attribute '(.+)'", text)
    if missing:
        kind, name = missing.groups()
        if kind == "dict":
            return f"there is no `{name}` here: check the name (nodes go by the names shown on the canvas)"
        return f"{_TYPE_WORDS.get(kind, kind)} has no field `{name}`"
    element = re.match(r"'?(\w+) object'? has no element (\S+)", text)
    if element:
        return f"the list has no item {element.group(2)} (counting starts at 0)"
    undefined = re.match(r"'(.+?)' is undefined", text)
    if undefined:
        return f"`{undefined.group(1)}` is not known here: start with item, items, nodes, input or run"
    if isinstance(exc, ZeroDivisionError):
        return "a division by zero"
    operand = re.match(r"unsupported operand type\(s\) for (\S+): '(\w+)' and '(\w+)'", text)
    if operand:
        op, left, right = operand.groups()
        return (f"`{op}` cannot combine {_TYPE_WORDS.get(left, left)} with {_TYPE_WORDS.get(right, right)}: "
                "make both numbers (e.g. | int) or both text (join text with ~)")
    return _dejargon(text)


def _unfinished(source: str) -> str | None:
    """The operator an expression ends with (`item.a +` → `+`), if it ends with one."""
    stripped = source.rstrip()
    for op in sorted(_OPERATORS, key=len, reverse=True):
        if stripped.endswith(op) and (not op.isalpha() or re.search(rf"(^|\W){op}$", stripped)):
            return op
    return None


def _unbalanced(source: str) -> str | None:
    """The first bracket left open, outside quoted text."""
    stack: list[str] = []
    quote = ""
    for ch in source:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in _OPENERS:
            stack.append(ch)
        elif ch in _OPENERS.values() and stack and _OPENERS[stack[-1]] == ch:
            stack.pop()
    return stack[0] if stack else None


def _dejargon(text: str) -> str:
    text = re.sub(r"'(\w+) object'", lambda m: _TYPE_WORDS.get(m.group(1), m.group(1)), text)
    return text.replace("end of print statement", "}}").replace("end of template", "the end")

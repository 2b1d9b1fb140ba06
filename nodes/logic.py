"""Flow control: If, Switch, Merge, Filter, Wait, with the condition model and its evaluator.

Dotted paths into items (`get_path`) and typed value reading (`to_number`, `to_date`, `to_bool`), which the
data-shaping nodes use too, come from the SDK (flowboard/values.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, WrapValidator, field_validator

from flowboard.sdk import (
    MISSING,
    Category,
    Context,
    Inputs,
    Item,
    Items,
    NodeError,
    NodeType,
    Outputs,
    Suspend,
    compile_regex,
    get_path,
    to_bool,
    to_date,
    to_number,
    to_text,
)

# -- paths and typed values: flowboard.values, through the SDK ------------------------------------------------------

PORT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


# -- conditions ------------------------------------------------------------------------------------------------------

Op = Literal["equals", "not_equals", "gt", "gte", "lt", "lte", "contains", "not_contains", "starts_with", "ends_with",
             "matches", "is_empty", "is_not_empty", "is_true", "is_false", "exists", "not_exists"]
ValueType = Literal["auto", "string", "number", "boolean", "date"]
_NO_VALUE = frozenset({"is_empty", "is_not_empty", "is_true", "is_false", "exists", "not_exists"})
_ORDER = frozenset({"gt", "gte", "lt", "lte"})
_TEXT_OPS = frozenset({"starts_with", "ends_with", "matches"})
_READERS = {"number": to_number, "date": to_date, "boolean": to_bool}
_KIND_WORDS = {"number": "a number", "date": "an ISO 8601 date", "boolean": "true or false"}


class Condition(BaseModel):
    """One test on one field of an item, e.g. `days_left` is less than 3."""

    model_config = ConfigDict(extra="forbid", title="Condition")
    field: str = Field(min_length=1, description="The name of the item's field to test, e.g. days_left; for a field "
                                                 "inside another, join the names with dots: customer.email.")
    op: Op = Field("equals", title="Comparison", description="How to compare the field with the value.",
                   json_schema_extra={"enum_labels": [
                       "is equal to", "is not equal to", "is greater than", "is greater than or equal to",
                       "is less than", "is less than or equal to", "contains", "does not contain", "starts with",
                       "ends with", "matches the pattern", "is empty", "is not empty", "is true", "is false", "exists",
                       "does not exist"]})
    type: ValueType = Field("auto", title="Compare as", description="Automatic compares numbers as numbers (also "
                            "written as text, so 10 is more than 9), dates as dates, and anything else as text.",
                            json_schema_extra={"enum_labels": ["Automatic", "Text", "Numbers", "True or false",
                                                               "Dates"]})
    value: Any = Field(None, validate_default=True, description="What to compare with: a fixed value or an "
                                                                "expression, e.g. a field dragged in from the input.",
                       json_schema_extra={"widget": "expression"})
    ignore_case: bool = Field(False, description="Treat upper and lower case letters as the same.")

    @field_validator("value")
    @classmethod
    def _value_fits(cls, value: Any, info: ValidationInfo) -> Any:
        op, kind = info.data.get("op"), info.data.get("type")
        if op is None or op in _NO_VALUE:
            return value
        if value is None and (op in _ORDER or op in _TEXT_OPS or op in ("contains", "not_contains")):
            raise ValueError(f"the test {op!r} needs a value to compare with")
        reader = _READERS.get(kind or "")
        if reader is not None and value is not None and reader(value) is None:
            raise ValueError(f"{value!r} is not {_KIND_WORDS[kind or '']}; fix the value or change the type")
        if op == "matches" and not (isinstance(value, str) and "{{" in value):  # an expression: checked per item
            compile_regex(to_text(value))
        return value


def _entry(value: Any, handler: Any) -> Condition | ConditionGroup:
    """A list entry is a group when it has `conditions`, else a condition (errors keep plain locations)."""
    if isinstance(value, Condition | ConditionGroup):
        return value
    if isinstance(value, Mapping) and "conditions" in value:
        return ConditionGroup.model_validate(value)
    return Condition.model_validate(value)


Entry = Annotated["Condition | ConditionGroup", WrapValidator(_entry)]


class ConditionSet(BaseModel):
    """Conditions combined with AND (all must hold) or OR (one is enough)."""

    model_config = ConfigDict(extra="forbid")
    combine: Literal["and", "or"] = Field("and", title="Pass when", description="Whether an item must meet every "
                                          "condition or just one of them.", json_schema_extra={"enum_labels": [
                                              "every condition is met (and)", "any one condition is met (or)"]})
    conditions: list[Entry] = Field(
        default_factory=list, validate_default=True, json_schema_extra={"minItems": 1},
        description="The tests. A condition group holds tests of its own, combined its own way: for 'a and b, or c', "
                    "pass when any one is met, with a group of a and b (every one met) and c.",
    )

    @field_validator("conditions")
    @classmethod
    def _not_empty(cls, value: list[Any]) -> list[Any]:
        if not value:
            raise ValueError("add at least one condition")
        return value


class ConditionGroup(ConditionSet):
    """A group of conditions inside another, for mixing AND and OR."""

    model_config = ConfigDict(extra="forbid", title="Condition group")


ConditionSet.model_rebuild()
ConditionGroup.model_rebuild()


class _BadPattern(Exception):
    pass


class _Mismatch(Exception):
    def __init__(self, value: Any, kind: str):
        self.value, self.kind = value, kind


def matches(conditions: ConditionSet, item: Item, index: int | None = None, where: str = "") -> bool:
    """Whether `item` passes `conditions`. Raises NodeError (with the item's index and the condition) when a field
    cannot be read as the type the condition asks for."""
    tests = (_holds(entry, item, index, f"{where}conditions[{i}]") for i, entry in enumerate(conditions.conditions))
    return all(tests) if conditions.combine == "and" else any(tests)


def _holds(entry: Condition | ConditionGroup, item: Item, index: int | None, where: str) -> bool:
    if isinstance(entry, ConditionGroup):
        return matches(entry, item, index, where + ".")
    try:
        return _test(entry, get_path(item, entry.field))
    except _BadPattern as exc:
        raise NodeError(str(exc), item_index=index, field=f"{where}.value") from None
    except _Mismatch as exc:
        raise NodeError(f"{entry.field!r} is {exc.value!r}, which is not {_KIND_WORDS[exc.kind]}; fix the data or set "
                        f"the condition's type to auto", item_index=index, field=f"{where}.field") from None


def _test(cond: Condition, left: Any) -> bool:
    op = cond.op
    if op == "exists" or op == "not_exists":
        return (left is not MISSING) == (op == "exists")
    if left is MISSING:
        left = None
    if op == "is_empty" or op == "is_not_empty":
        empty = left is None or left == "" or left == [] or left == {}
        return empty == (op == "is_empty")
    if op == "is_true" or op == "is_false":
        return to_bool(left) is (op == "is_true")
    if op == "equals" or op == "not_equals":
        return _equal(left, cond.value, cond.type, cond.ignore_case) == (op == "equals")
    if op in _ORDER:
        order = _compare(left, cond.value, cond.type, cond.ignore_case)
        if order is None:
            return False
        return {"gt": order > 0, "gte": order >= 0, "lt": order < 0, "lte": order <= 0}[op]
    if op == "contains" or op == "not_contains":
        return _contains(left, cond) == (op == "contains")
    if left is None:
        return False
    text, other = to_text(left), to_text(cond.value)
    if op == "matches":
        try:
            return compile_regex(other, cond.ignore_case).search(text) is not None
        except ValueError as exc:  # a pattern that came from an expression
            raise _BadPattern(str(exc)) from None
    if cond.ignore_case:
        text, other = text.casefold(), other.casefold()
    return text.startswith(other) if op == "starts_with" else text.endswith(other)


def _contains(left: Any, cond: Condition) -> bool:
    if left is None:
        return False
    if isinstance(left, list):
        return any(_equal(element, cond.value, cond.type, cond.ignore_case) for element in left)
    if isinstance(left, dict):
        return to_text(cond.value) in left
    text, other = to_text(left), to_text(cond.value)
    if cond.ignore_case:
        text, other = text.casefold(), other.casefold()
    return other in text


def _kind(left: Any, right: Any, kind: str) -> str | None:
    """The type two values compare as; None means "as they are" (auto mode, unlike values)."""
    if kind != "auto":
        return kind
    if isinstance(left, bool) or isinstance(right, bool):
        return "boolean" if to_bool(left) is not None and to_bool(right) is not None else None
    if to_number(left) is not None and to_number(right) is not None:
        return "number"
    if isinstance(left, str) and isinstance(right, str):
        return "date" if to_date(left) is not None and to_date(right) is not None else "string"
    return None


def _read(value: Any, kind: str, ignore_case: bool) -> Any:
    if kind == "string":
        return to_text(value).casefold() if ignore_case else to_text(value)
    read = _READERS[kind](value)
    if read is None:
        raise _Mismatch(value, kind)
    return read


def _pair(left: Any, right: Any, kind: str, ignore_case: bool) -> tuple[Any, Any] | None:
    resolved = _kind(left, right, kind)
    if resolved is None:
        return None
    return _read(left, resolved, ignore_case), _read(right, resolved, ignore_case)


def _equal(left: Any, right: Any, kind: str, ignore_case: bool) -> bool:
    if left is None or right is None:
        return left is None and right is None
    pair = _pair(left, right, kind, ignore_case)
    if pair is None:
        return bool(left == right)
    return bool(pair[0] == pair[1])


def _compare(left: Any, right: Any, kind: str, ignore_case: bool) -> int | None:
    if left is None or right is None:
        return None
    pair = _pair(left, right, kind, ignore_case)
    if pair is None:
        if isinstance(left, dict | list) or isinstance(right, dict | list):
            return None
        pair = (to_text(left), to_text(right))  # auto mode, unlike scalars: compare their text
    a, b = pair
    return int(a > b) - int(a < b)


# -- If --------------------------------------------------------------------------------------------------------------


class IfConfig(ConditionSet):
    pass


class If(NodeType):
    """Sends each item down the `true` or the `false` output, depending on conditions on its fields.

    Each condition names a field of the item (a dotted path such as `customer.email`), a test (equals, greater than,
    contains, matches a regular expression, is empty, exists, …) and a value to compare with. The value may be an
    expression such as `{{ item.limit }}`: it is worked out for each item. Comparisons are typed: in `auto` mode,
    numbers compare as numbers even when written as text ("10" is greater than "9"), ISO 8601 dates compare as points
    in time, and anything else compares as text. Choose a type to force one; an item whose field cannot be read as
    that type fails the node. A missing field equals nothing and is neither greater nor smaller than anything.

    Conditions combine with AND or OR, and a condition can be a group of its own, so `(a AND b) OR c` is an OR over a
    group and a condition. If no item goes one way, that output is empty and the nodes after it are skipped."""

    type = "logic.if"
    common = True
    title = "If"
    category = Category.logic
    icon = "call_split"
    description = "Send each item one of two ways, depending on whether it meets your conditions."
    outputs = ("true", "false")
    Config = IfConfig

    async def run(self, ctx: Context, config: IfConfig, inputs: Inputs) -> Outputs:
        passed: Items = []
        failed: Items = []
        for index, item, cfg in ctx.each(inputs["main"]):
            (passed if matches(cfg, item, index) else failed).append(item)
        return {"true": passed, "false": failed}


# -- Filter ----------------------------------------------------------------------------------------------------------


class FilterConfig(ConditionSet):
    pass


class Filter(NodeType):
    """Keeps the items that meet the conditions and drops the others.

    The conditions work exactly as in the If node (fields, tests, typed comparisons, AND/OR groups). Use an If node
    instead when the dropped items should go somewhere. When no item is kept, the nodes after this one are skipped."""

    type = "logic.filter"
    title = "Filter"
    category = Category.logic
    icon = "filter_alt"
    description = "Keep only the items that meet your conditions."
    Config = FilterConfig

    async def run(self, ctx: Context, config: FilterConfig, inputs: Inputs) -> Outputs:
        return [item for index, item, cfg in ctx.each(inputs["main"]) if matches(cfg, item, index)]


# -- Switch ----------------------------------------------------------------------------------------------------------


class SwitchRule(ConditionSet):
    """Items that meet these conditions leave by this rule's output."""

    model_config = ConfigDict(extra="forbid", title="Rule")
    output: str = Field("", description="Name of the output for this rule (lowercase letters, digits and _). Empty: "
                                        "out0, out1, … by the rule's position.")

    @field_validator("output")
    @classmethod
    def _port_name(cls, value: str) -> str:
        if value and not PORT_NAME.match(value):
            raise ValueError("an output name starts with a lowercase letter and has only lowercase letters, digits "
                             "and _ (at most 32)")
        if value in ("fallback", "error"):
            raise ValueError(f"{value!r} is reserved; choose another output name")
        return value


class SwitchConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rules: list[SwitchRule] = Field(
        default_factory=list, validate_default=True,
        description="Checked in order; each rule sends the items that meet its conditions to its output.",
    )
    fallback: Literal["none", "output"] = Field(
        "none", description="What happens to items no rule matches: dropped, or sent to an extra output called "
                            "fallback.",
        json_schema_extra={"enum_labels": ["Drop them", "Send them to the fallback output"]})
    all_matches: bool = Field(False, description="Send an item to every rule it meets, not just the first one.")

    @field_validator("rules")
    @classmethod
    def _some_rules(cls, value: list[SwitchRule]) -> list[SwitchRule]:
        if not value:
            raise ValueError("add at least one rule")
        return value


def _rule_port(rule: Any, index: int) -> str:
    name = rule.get("output") if isinstance(rule, Mapping) else getattr(rule, "output", None)
    return name if isinstance(name, str) and PORT_NAME.match(name) and name not in ("fallback", "error") \
        else f"out{index}"


class Switch(NodeType):
    """Sends items to one of several outputs by rules, like a railway switch.

    Each rule has conditions (as in the If node) and an output name; its output appears on the node. Rules are
    checked in order and an item goes to the first rule it meets, or to every rule it meets when `all_matches` is on.
    Items that meet no rule are dropped, or sent to an extra `fallback` output when you choose so. Outputs no item
    went to are empty, and the nodes after them are skipped."""

    type = "logic.switch"
    title = "Switch"
    category = Category.logic
    icon = "alt_route"
    description = "Send each item to one of several outputs, chosen by rules you set."
    outputs = ("out0",)
    Config = SwitchConfig

    @classmethod
    def output_ports(cls, config: Mapping[str, Any]) -> tuple[str, ...]:
        rules = config.get("rules") if isinstance(config, Mapping) else None
        if not isinstance(rules, list):
            names = list(cls.outputs)
        else:
            names = [_rule_port(rule, i) for i, rule in enumerate(rules)]
        if isinstance(config, Mapping) and config.get("fallback") == "output":
            names.append("fallback")
        return tuple(dict.fromkeys(names)) or cls.outputs

    async def run(self, ctx: Context, config: SwitchConfig, inputs: Inputs) -> Outputs:
        out: dict[str, Items] = {_rule_port(rule, i): [] for i, rule in enumerate(config.rules)}
        if config.fallback == "output":
            out["fallback"] = []
        for index, item, cfg in ctx.each(inputs["main"]):
            sent: set[str] = set()
            for i, rule in enumerate(cfg.rules):
                if matches(rule, item, index, f"rules[{i}]."):
                    port = _rule_port(rule, i)
                    if port not in sent:
                        sent.add(port)
                        out.setdefault(port, []).append(item)
                    if not cfg.all_matches:
                        break
            if not sent and cfg.fallback == "output":
                out["fallback"].append(item)
        return out


# -- Merge -----------------------------------------------------------------------------------------------------------


class MergeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: Literal["append", "combine_by_key", "by_position", "wait"] = Field(
        "append", description="One after the other: a's items, then b's. Match by a field: join the items whose key "
                              "fields are equal. By position: the first of a with the first of b, and so on. Wait: "
                              "wait for both, then pass on a's items.",
        json_schema_extra={"enum_labels": ["One after the other", "Match by a field", "By position",
                                           "Wait for both"]})
    key_a: str = Field("", validate_default=True,
                       description="Combine by key: the key field of the items on input a (dotted path).")
    key_b: str = Field("", description="Combine by key: the key field of the items on input b; empty means the same "
                                       "as key_a.")
    join: Literal["inner", "left", "outer"] = Field(
        "inner", description="Match by a field: keep only the items that found a partner, also a's items without one, "
                             "or every item of both.",
        json_schema_extra={"enum_labels": ["Only matched pairs", "Matched, and a's other items",
                                           "Matched, and the other items of both"]})
    include_unpaired: bool = Field(True, description="By position: keep the extra items of the longer input as they "
                                                     "are.")

    @field_validator("key_a")
    @classmethod
    def _key_given(cls, value: str, info: ValidationInfo) -> str:
        if info.data.get("mode") == "combine_by_key" and not value:
            raise ValueError("combine by key needs key_a: the field to match on")
        return value


def _join_key(value: Any) -> Any:
    """Join keys match by value: 7, 7.0 and "7" are one key; "007" is not 7. Missing or null never matches."""
    if value is MISSING or value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return to_text(value)
    return "\0" + json.dumps(value, sort_keys=True, default=str)


class Merge(NodeType):
    """Brings the items of two branches together into one list.

    It waits until everything before it has finished, then combines input a and input b: one after the other
    (append), joined on a key field like a database join (combine by key: b's fields win when both have one), pair by
    pair (by position), or simply passes on a's items once both branches are done (wait). A branch that was not taken
    counts as no items; when neither branch ran, the merge is skipped too."""

    type = "logic.merge"
    title = "Merge"
    category = Category.logic
    icon = "merge"
    description = "Combine the items of two branches into one list."
    inputs = ("a", "b")
    runs_on_empty = True
    Config = MergeConfig

    async def run(self, ctx: Context, config: MergeConfig, inputs: Inputs) -> Outputs:
        a, b = list(inputs.get("a") or []), list(inputs.get("b") or [])
        if config.mode == "append":
            return a + b
        if config.mode == "wait":
            return a
        if config.mode == "by_position":
            paired = [ctx.paired({**x, **y}, ("a", i), ("b", i)) for i, (x, y) in enumerate(zip(a, b, strict=False))]
            if config.include_unpaired:
                paired += a[len(b):] + b[len(a):]
            return paired
        return _combine(ctx, a, b, config)


def _combine(ctx: Context, a: Items, b: Items, config: MergeConfig) -> Items:
    key_b = config.key_b or config.key_a
    index: dict[Any, list[int]] = {}
    for position, item in enumerate(b):
        key = _join_key(get_path(item, key_b))
        if key is not None:
            index.setdefault(key, []).append(position)
    out: Items = []
    used: set[int] = set()
    for at, item in enumerate(a):
        key = _join_key(get_path(item, config.key_a))
        hits = index.get(key, []) if key is not None else []
        for position in hits:
            out.append(ctx.paired({**item, **b[position]}, ("a", at), ("b", position)))
            used.add(position)
        if not hits and config.join != "inner":
            out.append(item)
    if config.join == "outer":
        out.extend(item for position, item in enumerate(b) if position not in used)
    return out


# -- Wait ------------------------------------------------------------------------------------------------------------

MAX_WAIT = 366 * 86400.0  # a year and a day: a wait is durable, it survives restarts


class WaitConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: Literal["delay", "until", "link"] = Field(
        "delay", description="Wait a number of seconds; wait until a date and time; or wait until someone opens the "
                             "run's resume link (a node before this one sends it, e.g. in an email), and pass on what "
                             "they send.",
        json_schema_extra={"enum_labels": ["A number of seconds", "Until a date and time",
                                           "Until the resume link is called"]})
    seconds: float = Field(1.0, ge=0, le=MAX_WAIT, description="Delay: how many seconds to wait (at most a year).")
    give_up_after: float = Field(0, ge=0, le=MAX_WAIT,
                                 description="Link: after this many seconds without a call, pass the items on "
                                             "(0: wait for the link however long).")
    until: str = Field("", validate_default=True,
                       description="Until: an ISO 8601 date and time such as 2025-01-31T09:00:00+01:00 (UTC when no "
                                   "time zone is given), or an expression.",
                       json_schema_extra={"widget": "expression"})
    credential: str = Field("", description="Link: a credential holding a token the caller must send in the header "
                                            "below; empty: the signed link alone is enough.",
                            json_schema_extra={"widget": "credential"})
    header: str = Field("X-Api-Key", description="Link: the name of the header that carries the token, e.g. "
                                                 "X-Api-Key.")

    @field_validator("until")
    @classmethod
    def _until_readable(cls, value: str, info: ValidationInfo) -> str:
        if info.data.get("mode") == "until" and to_date(value) is None:
            raise ValueError("must be an ISO 8601 date and time, such as 2025-01-31T09:00:00Z")
        return value


class Wait(NodeType):
    """Pauses the run for a number of seconds, until a date and time, or until its resume link is called, then goes
    on: with the items unchanged, or, resumed by the link, with the JSON data the call brought.

    The wait is durable: a wait of more than a few seconds frees the run from memory (it shows as `waiting`), and
    it resumes at its time after any number of restarts. A time in the past does not wait at all. `until` may be an
    expression (worked out with the first item). Cancelling the run ends the wait at once."""

    type = "logic.wait"
    title = "Wait"
    category = Category.logic
    icon = "hourglass_top"
    description = "Pause for a while, until a given time, or until a resume link is called, before going on."
    Config = WaitConfig

    async def run(self, ctx: Context, config: WaitConfig, inputs: Inputs) -> Outputs | Suspend:
        now = datetime.now(UTC)
        if config.mode == "link":
            deadline = now.timestamp() + config.give_up_after if config.give_up_after > 0 else None
            return Suspend(deadline, data={"via": "link", "credential": config.credential or None,
                                           "header": config.header})
        delay = config.seconds
        if config.mode == "until":
            when = to_date(config.until)
            if when is None:  # pragma: no cover - the config model checks it
                raise NodeError("`until` is not a date and time", field="until")
            delay = (when - now) / timedelta(seconds=1)
            if delay > MAX_WAIT:
                raise NodeError(f"{config.until} is {delay / 86400:.0f} days away; this node waits at most a year",
                                field="until", retryable=False)
        if delay <= 0:
            return list(inputs["main"])
        return Suspend(now.timestamp() + delay, data={"via": "timer"})


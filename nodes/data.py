"""Data shaping: Set / transform, Sort, Limit, Split out, Aggregate.

Items are never changed in place (they are frozen: another branch may hold the same item): a node copies what it
changes, down the path it changes. A node that makes new items says which input items they came from (`ctx.paired`),
so expressions after it can reach the matching item of an earlier node.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from flowboard.sdk import (
    MISSING,
    Category,
    Context,
    FrozenDict,
    FrozenList,
    Inputs,
    Item,
    Items,
    NodeError,
    NodeType,
    Outputs,
    child,
    freeze,
    get_path,
    split_path,
    to_date,
    to_number,
    to_text,
)

_SCALARS = frozenset({str, int, float, bool, type(None)})  # config values put into items as they are


class _PathError(Exception):
    pass


def _put(container: Any, part: str, value: Any) -> None:
    """Set one part in a container this node made (a plain or a frozen copy: frozen ones are set through dict's and
    list's own methods, which is how the node fills an item it hands on frozen)."""
    if isinstance(container, dict):
        dict.__setitem__(container, part, value)
    elif isinstance(container, list) and part.isdigit() and int(part) < len(container):
        list.__setitem__(container, int(part), value)
    else:
        raise _PathError(f"there is no position {part} in this list" if isinstance(container, list)
                         else f"cannot go into {to_text(container)!r}: it is not an object")


def _parent(root: Item, parts: tuple[str, ...], create: bool, frozen: bool = False) -> Any:
    """The container of the path's last part, with every container on the way copied into `root` (itself already a
    copy; `frozen`: the copies are frozen ones, for an item made of frozen parts). MISSING when a container is
    missing and `create` is off."""
    node: Any = root
    for depth in range(len(parts) - 1):
        part = parts[depth]
        below = node.get(part, MISSING) if isinstance(node, dict) else child(node, part)
        if isinstance(below, dict):
            below = FrozenDict(below) if frozen else dict(below)
        elif isinstance(below, list):
            below = FrozenList(below) if frozen else list(below)
        elif not create:
            return MISSING
        elif below is MISSING or below is None:
            below = FrozenDict() if frozen else {}
        else:
            raise _PathError(f"{'.'.join(parts[:depth + 1])!r} holds {to_text(below)!r}, not an object")
        _put(node, part, below)
        node = below
    return node


def set_path(root: Item, path: str, value: Any, frozen: bool = False) -> None:
    """Set a dotted path in `root` (a copy the caller owns), creating objects on the way (frozen ones with
    `frozen`, for a frozen `root` whose parts are all frozen)."""
    if path in root:
        dict.__setitem__(root, path, value)
        return
    parts = split_path(path)
    if len(parts) < 2:
        dict.__setitem__(root, parts[0] if parts else path, value)
    else:
        _put(_parent(root, parts, True, frozen), parts[-1], value)


def pop_path(root: Item, path: str, frozen: bool = False) -> Any:
    """Remove a dotted path from `root` (a copy the caller owns); its value, or MISSING."""
    if path in root:
        return dict.pop(root, path)
    parts = split_path(path)
    if not parts:
        return MISSING
    parent = _parent(root, parts, False, frozen)
    if isinstance(parent, dict):
        return dict.pop(parent, parts[-1], MISSING)
    if isinstance(parent, list) and parts[-1].isdigit() and int(parts[-1]) < len(parent):
        return list.pop(parent, int(parts[-1]))
    return MISSING


# -- Set / transform -------------------------------------------------------------------------------------------------


class SetField(BaseModel):
    model_config = ConfigDict(extra="forbid", title="Field")
    name: str = Field(min_length=1, description="Field to add or overwrite; a dotted path such as customer.name "
                                                "creates nested objects.")
    value: Any = Field(None, description="The value: fixed, or an expression such as {{ item.price * 1.2 }} "
                                         "(numbers, lists and objects keep their type).",
                       json_schema_extra={"widget": "expression"})


class Rename(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, title="Rename")
    from_: str = Field(alias="from", min_length=1, description="The field's current name (dotted path allowed).")
    to: str = Field(min_length=1, description="The field's new name (dotted path allowed).")


class SetConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    fields: list[SetField] = Field(default_factory=list, description="Fields to add or overwrite, in order.",
                                   json_schema_extra={"widget": "keyvalue"})
    rename: list[Rename] = Field(default_factory=list, description="Fields to rename (done before setting fields).",
                                 json_schema_extra={"widget": "keyvalue"})
    remove: list[str] = Field(default_factory=list, description="Fields to remove (done after setting fields).")
    keep_only: bool = Field(False, description="Keep only the fields set or renamed here and drop all others.")


class Set(NodeType):
    """Adds, changes, renames and removes fields of every item.

    For each item, in this order: the `rename` list moves fields to new names, the `fields` list sets values (fixed,
    or expressions such as `{{ item.first }} {{ item.last }}` or `{{ nodes['Look up'].items[0].id }}`, worked out per
    item; an expression that is only `{{ … }}` keeps its type: a number stays a number), then the `remove` list drops
    fields. A dotted name such as `address.city` reaches into nested objects and creates them when needed. With
    `keep_only`, each item keeps just the fields set or renamed here."""

    type = "data.set"
    title = "Set / transform"
    category = Category.logic
    icon = "edit_note"
    description = "Add, change, rename or remove fields on every item."
    Config = SetConfig

    #: (config, what `_compiled` made of it) for the last config seen: a config without expressions is the same
    #: object in every run, so its paths are split and its values frozen once
    _last: tuple[SetConfig, tuple[Any, ...]] | None = None

    async def run(self, ctx: Context, config: SetConfig, inputs: Inputs) -> Outputs:
        # Each new item is built frozen, as the engine would freeze it: a frozen copy of the (frozen) input item, with
        # frozen copies of the containers down each path it sets, and frozen values. So the engine has nothing left
        # to walk, and nothing is copied twice.
        out: Items = []
        last = self._last
        for index, item, cfg in ctx.each(inputs["main"]):
            if last is None or last[0] is not cfg:
                last = self._last = (cfg, _compiled(cfg))
            renames, fields, removes, keep = last[1]
            where = ""
            try:
                new = FrozenDict(item if item.__class__ is FrozenDict else freeze(item))
                for where, source, target in renames:  # noqa: B007 (`where` is for the except clause)
                    value = pop_path(new, source, True)
                    if value is not MISSING:
                        set_path(new, target, value, True)
                for where, name, parts, value in fields:  # noqa: B007
                    if name in new:  # a top-level key with dots in its name wins over the path, as in set_path
                        dict.__setitem__(new, name, value)
                    elif len(parts) == 2 and (below := new.get(parts[0])).__class__ is FrozenDict:
                        below = FrozenDict(below)  # (what `_parent` does for one object on the way, without its loop)
                        dict.__setitem__(below, parts[1], value)
                        dict.__setitem__(new, parts[0], below)
                    elif len(parts) > 1:
                        _put(_parent(new, parts, True, True), parts[-1], value)
                    else:
                        dict.__setitem__(new, parts[0] if parts else name, value)
                for where, path in removes:  # noqa: B007
                    pop_path(new, path, True)
                if keep is not None:
                    where = "keep_only"
                    kept: Item = FrozenDict()
                    for path in keep:
                        value = get_path(new, path)
                        if value is not MISSING:
                            set_path(kept, path, value, True)
                    new = kept
            except _PathError as exc:
                raise NodeError(str(exc), item_index=index, field=where) from None
            out.append(new)
        return FrozenList(out)


def _compiled(cfg: SetConfig) -> tuple[Any, ...]:
    """What `Set.run` does for each item, worked out once per config: each step with the field its errors name, the
    paths split, the values frozen (an item may share a frozen value: nobody can change it)."""
    renames = tuple((f"rename[{i}].to", rename.from_, rename.to) for i, rename in enumerate(cfg.rename))
    fields = tuple((f"fields[{i}].name", spec.name, split_path(spec.name),
                    spec.value if spec.value.__class__ in _SCALARS else freeze(spec.value))
                   for i, spec in enumerate(cfg.fields))
    removes = tuple((f"remove[{i}]", path) for i, path in enumerate(cfg.remove))
    keep = [spec.name for spec in cfg.fields] + [rename.to for rename in cfg.rename] if cfg.keep_only else None
    return renames, fields, removes, keep


# -- Sort ------------------------------------------------------------------------------------------------------------


class SortKey(BaseModel):
    model_config = ConfigDict(extra="forbid", title="Sort key")
    field: str = Field(min_length=1, description="Field to sort by (dotted path allowed).")
    order: Literal["asc", "desc"] = Field("asc", description="Which end comes first.", json_schema_extra={
        "enum_labels": ["smallest first (A to Z, 1 to 9, oldest first)",
                        "largest first (Z to A, 9 to 1, newest first)"]})
    type: Literal["auto", "string", "number", "date"] = Field(
        "auto", title="Sort as", description="Automatic sorts numbers (also written as text) by value, dates such as "
                                             "2025-01-31 by time and the rest as text; choose one to force it.",
        json_schema_extra={"enum_labels": ["Automatic", "Text", "Numbers", "Dates"]})
    ignore_case: bool = Field(True, description="Sort text without regard to upper and lower case.")


class SortConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    by: list[SortKey] = Field(default_factory=list, validate_default=True,
                              description="Sort by these fields; later ones break ties of earlier ones.")

    @field_validator("by")
    @classmethod
    def _some_key(cls, value: list[SortKey]) -> list[SortKey]:
        if not value:
            raise ValueError("add a field to sort by")
        return value


_KIND = {"number": (to_number, "a number"), "date": (to_date, "an ISO 8601 date")}


def _sort_value(value: Any, key: SortKey) -> Any:
    if key.type in _KIND:
        read, words = _KIND[key.type]
        result = read(value)
        if result is None:
            raise _PathError(f"{key.field!r} is {value!r}, which is not {words}; fix the data or sort as auto")
        return result
    if key.type == "string" or isinstance(value, str):
        if key.type == "auto":
            number = to_number(value)
            if number is not None:
                return (0, number)
            date = to_date(value)
            if date is not None and value.strip().lower() not in ("now", "today"):
                return (1, date.timestamp())
        text = to_text(value)
        text = text.casefold() if key.ignore_case else text
        return text if key.type == "string" else (2, text)
    if isinstance(value, bool):
        return (3, int(value))
    if isinstance(value, int | float):
        return (0, value)
    return (4, json.dumps(value, sort_keys=True, default=str))


class Sort(NodeType):
    """Puts the items in order by one or more fields.

    Each sort key names a field and a direction. Numbers sort by value even when written as text ("9" before "10"),
    ISO dates by time, and text alphabetically (ignoring case unless you turn that off). Items with the field missing,
    empty or null always come last, in either direction; items that compare equal keep their order."""

    type = "data.sort"
    title = "Sort"
    category = Category.logic
    icon = "sort"
    description = "Put the items in order by one or more fields."
    Config = SortConfig

    async def run(self, ctx: Context, config: SortConfig, inputs: Inputs) -> Outputs:
        rows: list[tuple[Item, list[Any]]] = []
        for index, item in enumerate(inputs["main"]):
            values = []
            for i, key in enumerate(config.by):
                value = get_path(item, key.field)
                try:
                    values.append(MISSING if value is MISSING or value is None or value == ""
                                  else _sort_value(value, key))
                except _PathError as exc:
                    raise NodeError(str(exc), item_index=index, field=f"by[{i}].type") from None
            rows.append((item, values))
        for i in reversed(range(len(config.by))):  # stable sorts, last key first
            present = [row for row in rows if row[1][i] is not MISSING]
            present.sort(key=lambda row: row[1][i], reverse=config.by[i].order == "desc")
            rows = present + [row for row in rows if row[1][i] is MISSING]
        return [item for item, _ in rows]


# -- Limit -----------------------------------------------------------------------------------------------------------


class LimitConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    count: int = Field(10, ge=0, description="How many items to keep.")
    keep: Literal["first", "last"] = Field("first", description="Keep the first or the last items.",
                                           json_schema_extra={"enum_labels": ["the first items", "the last items"]})


class Limit(NodeType):
    """Keeps only the first (or the last) few items and drops the rest. With fewer items than the limit, all pass;
    with a limit of 0 none do, and the nodes after this one are skipped."""

    type = "data.limit"
    title = "Limit"
    category = Category.logic
    icon = "content_cut"
    description = "Keep only the first or last few items."
    Config = LimitConfig

    async def run(self, ctx: Context, config: LimitConfig, inputs: Inputs) -> Outputs:
        items = inputs["main"]
        if config.count == 0:
            return []
        return list(items[: config.count] if config.keep == "first" else items[-config.count:])


# -- Split out -------------------------------------------------------------------------------------------------------


class SplitOutConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    field: str = Field(min_length=1, description="The field that holds the list to split (dotted path allowed).")
    output_field: str = Field("", description="Name for an element that is not an object, e.g. tag for a list of "
                                              "texts; empty means the list field's own name.")
    keep_other_fields: bool = Field(False, description="Copy the other fields of the original item into each new "
                                                       "item.")
    keep_empty: bool = Field(False, description="Pass on items whose list is missing or empty unchanged, instead of "
                                                "dropping them.")


class SplitOut(NodeType):
    """Turns one item holding a list into one item per element of the list.

    An element that is an object becomes the new item; any other element (a text, a number) becomes a field of a new
    item, named after the list field or `output_field`. With `keep_other_fields` each new item also gets the original
    item's other fields (the element's own fields win). A field that holds a single value counts as a list of one;
    items without the field, or with an empty list, are dropped unless `keep_empty` is on."""

    type = "data.split_out"
    title = "Split out"
    category = Category.logic
    icon = "format_list_bulleted"
    description = "Turn a list inside an item into separate items, one per element."
    Config = SplitOutConfig

    async def run(self, ctx: Context, config: SplitOutConfig, inputs: Inputs) -> Outputs:
        parts = split_path(config.field)
        name = config.output_field or (parts[-1] if parts else config.field)
        out: Items = []
        for index, item in enumerate(inputs["main"]):
            value = get_path(item, config.field)
            elements = value if isinstance(value, list) else [] if value is MISSING or value is None else [value]
            if not elements:
                if config.keep_empty:
                    out.append(item)
                continue
            base: Item = {}
            if config.keep_other_fields:
                base = dict(item)
                pop_path(base, config.field)
            out.extend(ctx.paired({**base, **element} if isinstance(element, dict) else {**base, name: element},
                                  index) for element in elements)
        return out


# -- Aggregate -------------------------------------------------------------------------------------------------------


class AggregateField(BaseModel):
    model_config = ConfigDict(extra="forbid", title="Field to collect")
    field: str = Field(min_length=1, description="Field to collect from every item (dotted path allowed).")
    output_field: str = Field("", description="Name of the list in the result; empty means the field's own name.")

    @property
    def name(self) -> str:
        return self.output_field or (split_path(self.field) or [self.field])[-1]


class AggregateConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: Literal["all_items", "fields"] = Field(
        "all_items", description="All items: one item holding the list of every item. Fields: one item holding a "
                                 "list per field you choose below.",
        json_schema_extra={"enum_labels": ["All items", "Fields"]})
    output_field: str = Field("items", min_length=1, description="All items: name of the field that holds the list.")
    fields: list[AggregateField] = Field(default_factory=list, validate_default=True,
                                         description="Fields: the fields to collect.")
    skip_missing: bool = Field(True, description="Fields: leave out items that lack the field (off: put null in its "
                                                 "place, so the lists stay aligned).")

    @field_validator("fields")
    @classmethod
    def _fields_given(cls, value: list[AggregateField], info: ValidationInfo) -> list[AggregateField]:
        if info.data.get("mode") == "fields" and not value:
            raise ValueError("add at least one field to collect")
        names = [spec.name for spec in value]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"two fields would be collected into {twice[0]!r}; give one an output_field")
        return value


class Aggregate(NodeType):
    """Gathers all items into a single item.

    Either the whole items go into one list (`{"items": [...]}`), or chosen fields are collected, one list per field
    (`{"email": ["a@x.org", "b@x.org"]}`). Useful before a node that should act once for all items, such as sending
    one summary email. With no items coming in, the node is skipped."""

    type = "data.aggregate"
    title = "Aggregate"
    category = Category.logic
    icon = "data_array"
    description = "Gather all items into one item holding lists."
    Config = AggregateConfig

    async def run(self, ctx: Context, config: AggregateConfig, inputs: Inputs) -> Outputs:
        items = inputs["main"]
        every = range(len(items))
        if config.mode == "all_items":
            return [ctx.paired({config.output_field: list(items)}, *every)]
        collected: Item = {spec.name: [] for spec in config.fields}
        for item in items:
            for spec in config.fields:
                value = get_path(item, spec.field)
                if value is MISSING or value is None:
                    if config.skip_missing:
                        continue
                    value = None
                collected[spec.name].append(value)
        return [ctx.paired(collected, *every)]

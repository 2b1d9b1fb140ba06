"""Frozen items: what one node returns, no other node can change.

Items are shared: one node's output list is the input of every node connected to it, its recorded output and what
`nodes['…'].items` shows to expressions. A node that changed an item it received in place would change all of those
at once. So the engine freezes every item when its step finishes: dicts and lists become `FrozenDict` and
`FrozenList`, which are real dicts and lists for every reader (`isinstance`, JSON, `{**item}`, `dict(item)`, `for`)
but refuse to be changed, with a message that says how to make a changed copy.

Frozen instead of copied: a copy per consumer costs time and memory in proportion to the data on every edge, freezing
costs once per new object (an item passed on unchanged, or a nested object taken over from an input item, is already
frozen and is not walked again). Measured in bench/engine.py.

Frozen containers also remember their size (about the length of their JSON text) once asked, so the expression
sandbox can bound what an expression builds from them without walking the same data again.
"""

from __future__ import annotations

from typing import Any, NoReturn

__all__ = ["FrozenDict", "FrozenList", "ItemChanged", "freeze", "freeze_items", "freeze_parsed", "size_of", "thaw"]


class ItemChanged(TypeError):
    """A node tried to change an item it received (or one it had already handed on)."""


def _refuse(*_: Any, **__: Any) -> NoReturn:
    raise ItemChanged("items are shared with the other nodes and the run's record, so they cannot be changed in "
                      "place; build a changed copy instead, e.g. {**item, 'field': value} or list(items) + [new]")


class FrozenDict(dict[str, Any]):
    """A dict that cannot be changed. Copies (`dict(d)`, `{**d}`, `d | other`, `copy.deepcopy(d)`) are plain dicts."""

    __slots__ = ("_size",)

    __setitem__ = __delitem__ = __ior__ = _refuse
    clear = pop = popitem = setdefault = update = _refuse

    def __copy__(self) -> dict[str, Any]:
        return dict(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[str, Any]:
        return thaw(self)

    def __reduce__(self) -> tuple[Any, ...]:  # pickles (to a worker process) as a plain dict
        return (dict, (dict(self),))

    def copy(self) -> dict[str, Any]:
        return dict(self)


class FrozenList(list[Any]):
    """A list that cannot be changed. Copies (`list(l)`, `l[:]`, `l + other`) are plain lists."""

    __slots__ = ("_size",)

    __setitem__ = __delitem__ = __iadd__ = __imul__ = _refuse
    append = extend = insert = pop = remove = reverse = sort = clear = _refuse

    def __copy__(self) -> list[Any]:
        return list(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> list[Any]:
        return thaw(self)

    def __reduce__(self) -> tuple[Any, ...]:
        return (list, (list(self),))

    def copy(self) -> list[Any]:
        return list(self)


_DONE = frozenset({str, int, float, bool, type(None), FrozenDict, FrozenList})


def freeze(value: Any) -> Any:
    """`value` with every dict and list in it frozen; frozen parts are taken as they are, not walked again."""
    cls = value.__class__
    if cls in _DONE:
        return value
    if isinstance(value, dict):
        if _DONE.issuperset(map(type, value.values())):  # the usual case, at C speed: nothing new inside
            return FrozenDict(value)
        return FrozenDict({k: v if v.__class__ in _DONE else freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        if _DONE.issuperset(map(type, value)):
            return FrozenList(value)
        return FrozenList([v if v.__class__ in _DONE else freeze(v) for v in value])
    return value  # not JSON data: the recorder reports it; nothing to freeze


def freeze_parsed(value: Any) -> Any:
    """A value just parsed from JSON (plain dicts, lists and scalars, nobody else holding them), frozen: each dict or
    list inside is replaced by its frozen copy where it stands, so nothing is checked for frozen parts or walked twice
    (`freeze` does both, for values that may hold frozen parts or tuples). The value's depth must be bounded (as
    `jsonlimits.read_json` bounds it)."""
    cls = value.__class__
    if cls is dict:
        for key, v in value.items():
            c = v.__class__
            if c is dict or c is list:
                value[key] = freeze_parsed(v)  # (a value replaced, no key added: the iteration goes on)
        return FrozenDict(value)
    if cls is list:
        for i, v in enumerate(value):
            c = v.__class__
            if c is dict or c is list:
                value[i] = freeze_parsed(v)
        return FrozenList(value)
    return value


def freeze_items(items: list[Any]) -> FrozenList:
    """A node's output list, frozen (the list itself too: the node may still hold it)."""
    if items.__class__ is FrozenList:
        return items
    if _DONE.issuperset(map(type, items)):
        return FrozenList(items)
    return FrozenList([v if v.__class__ in _DONE else freeze(v) for v in items])


def thaw(value: Any) -> Any:
    """A plain, changeable deep copy."""
    if isinstance(value, dict):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [thaw(v) for v in value]
    return value


def size_of(value: Any, limit: int, memo: dict[int, tuple[Any, int]] | None = None) -> int:
    """About the length of `value` as JSON text, counting shared parts each time they appear (as printing does);
    stops counting above `limit`. Frozen containers keep their size; `memo` keeps the others' for one evaluation."""
    cls = value.__class__
    if cls is str:
        return len(value) + 2
    if cls is int:
        return value.bit_length() // 3 + 1  # about its number of digits
    if cls is float or cls is bool or value is None:
        return 5
    frozen = cls is FrozenDict or cls is FrozenList
    if frozen:
        try:
            return value._size
        except AttributeError:
            pass
    elif memo is not None and id(value) in memo:
        return memo[id(value)][1]
    total = 2
    if isinstance(value, dict):
        for k, v in value.items():
            total += size_of(k, limit, memo) + size_of(v, limit, memo) + 2
            if total > limit:
                return total
    elif isinstance(value, list | tuple | set | frozenset):
        for v in value:
            total += size_of(v, limit, memo) + 1
            if total > limit:
                return total
    elif isinstance(value, bytes | bytearray):
        total = len(value)
    elif isinstance(value, range):
        total = len(value) * 8
    else:
        total = 8
    if frozen:
        value._size = total
    elif memo is not None:
        memo[id(value)] = (value, total)  # the value is kept alive so its id is not reused meanwhile
    return total

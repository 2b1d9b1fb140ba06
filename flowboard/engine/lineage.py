"""Item lineage: which input item each output item came from (n8n's paired items).

A step's `lineage` maps each output port to the sources of its items, in order: for item i, the positions of the input
items it came from, counted over all of the node's input items together (port by port, ports in the order of their
first connection, each port's connections in the flow's order; `flat_inputs`). An entry is one position, a list of
them, or None when nothing is known; a whole port written as "=" means "item i came from input item i", the common
case (Set, HTTP per item, a node passing items on), stored in one character.

The engine works it out after each node (`infer`): an output item that IS an input item (Filter, Sort, Limit, If,
Switch, Merge append) came from it; a node that builds new items says where each came from with `ctx.paired` (Split
out, Aggregate, Merge by key); otherwise, one item in means every item came from it, and as many items out as in on a
single output means "in order". Anything else stays unknown, never guessed.

`Tracer` follows it backwards so `nodes['Look up'].item` in an expression is the item of "Look up" that the current
item came from, however many nodes lie between.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from ..errors import ExpressionError
from .states import Later, Step, StepStatus

Source = int | list[int] | None
Lineage = dict[str, Any]  # port -> "=" or list[Source]
Edge = tuple[str, str, str]  # (source node id, source port, target port)
SAME = "="
_NOT_FED = (StepStatus.skipped, StepStatus.cancelled)


def order_in_edges(edges: Iterable[Edge]) -> list[Edge]:
    """A node's incoming connections in the order its input items are counted: port by port (in the order of each
    port's first connection), then connection by connection."""
    edges = list(edges)
    rank: dict[str, int] = {}
    for _, _, port in edges:
        rank.setdefault(port, len(rank))
    return sorted(edges, key=lambda e: rank[e[2]])


def in_edges_by_node(edges: Iterable[tuple[str, str, str, str]]) -> dict[str, list[Edge]]:
    """{target: ordered incoming connections} from (source, source port, target, target port) tuples."""
    raw: dict[str, list[Edge]] = {}
    for source, source_port, target, target_port in edges:
        raw.setdefault(target, []).append((source, source_port, target_port))
    return {target: order_in_edges(found) for target, found in raw.items()}


def flat_inputs(inputs: Mapping[str, Sequence[Any]]) -> Sequence[Any]:
    """All input items in lineage order (`inputs` is built port by port in that order)."""
    if len(inputs) == 1:
        return next(iter(inputs.values()))
    return [item for items in inputs.values() for item in items]


def infer(inputs: Mapping[str, Sequence[Any]], outputs: Mapping[str, Sequence[Any]],
          pairs: Mapping[int, tuple[Any, tuple[Any, ...]]] | None) -> Lineage | None:
    """The lineage of one step (see the module docstring). `pairs`: what the node said with `ctx.paired`."""
    if not outputs:
        return None
    flat = flat_inputs(inputs)
    if not pairs and len(outputs) == 1:
        (port, out), = outputs.items()
        count = len(out)
        if count == len(flat):
            # One output, as many items as came in: "=" whether they were passed on as they came or are all new
            # (`_unpaired`); one item in and one out is one of the two (most chains: a webhook's one item).
            if count < 2 or out is flat or (out[0] is flat[0] and all(map(operator.is_, out, flat))):
                return {port: SAME}
            if set(map(id, flat)).isdisjoint(map(id, out)):
                return {port: SAME}
        elif not set(map(id, flat)).isdisjoint(map(id, out)):
            pass  # some of them passed on: worked out item by item below
        else:
            return {port: _unpaired(count, len(flat), 1)}  # only new items
    elif not pairs:
        given = set(map(id, flat))
        if all(given.isdisjoint(map(id, out)) for out in outputs.values()):  # only new items (Set): at C speed
            return {port: _unpaired(len(out), len(flat), len(outputs)) for port, out in outputs.items()}
    where: dict[int, int] = {}
    for index in range(len(flat) - 1, -1, -1):  # the first position wins for an item that arrived twice
        where[id(flat[index])] = index
    offsets: dict[str, int] = {}
    start = 0
    for port, items in inputs.items():
        offsets[port] = start
        start += len(items)
    lineage: Lineage = {}
    for port, out in outputs.items():
        sources: list[Source] = []
        known = False
        for item in out:
            paired = pairs.get(id(item)) if pairs else None
            if paired is not None and paired[0] is item:
                source: Source = _flat(paired[1], offsets, len(flat))
            else:
                source = where.get(id(item))
            known = known or source is not None
            sources.append(source)
        if not known and out:
            lineage[port] = _unpaired(len(out), len(flat), len(outputs))
            continue
        lineage[port] = SAME if _in_order(sources) else sources
    return lineage


#: A step's lineage to be worked out when first read (`Step.lineage`): for a node that said nothing with `ctx.paired`,
#: the step's frozen inputs and outputs are all it takes.
LATER = Later(infer)


def _unpaired(count: int, inputs: int, ports: int) -> Any:
    """New items the node said nothing about: all from the one input item, or one per input item in order, or
    unknown (None)."""
    if inputs == 1:
        return SAME if count == 1 else [0] * count
    if count == inputs and ports == 1:
        return SAME
    return None


def _flat(sources: tuple[Any, ...], offsets: Mapping[str, int], total: int) -> Source:
    found: list[int] = []
    for source in sources:
        port, index = source if isinstance(source, tuple) else ("main" if "main" in offsets else
                                                                 next(iter(offsets), "main"), source)
        if port not in offsets or not isinstance(index, int) or index < 0:
            continue
        flat = offsets[port] + index
        if flat < total:
            found.append(flat)
    if not found:
        return None
    return found[0] if len(found) == 1 else found


def _in_order(sources: list[Source]) -> bool:
    return all(source == index for index, source in enumerate(sources))


def sources_of(step: Step, port: str, index: int) -> list[int]:
    """Input positions output item `index` of `port` came from (empty when unknown)."""
    lineage = step.lineage
    if not lineage:
        return []
    entry = lineage.get(port)
    if entry == SAME:
        return [index]
    if not isinstance(entry, list) or index >= len(entry):
        return []
    source = entry[index]
    if isinstance(source, int):
        return [source]
    if isinstance(source, list):
        return [s for s in source if isinstance(s, int)]
    return []


class Tracer:
    """Follows lineage back through recorded steps: `matching(node, position, target)`."""

    def __init__(self, in_edges: Mapping[str, list[Edge]], steps: Mapping[str, Step]):
        self.in_edges = in_edges
        self.steps = steps

    def origin(self, node_id: str, position: int) -> tuple[str, str, int] | None:
        """(upstream node, its output port, index there) of input item `position` of `node_id`."""
        for source, port, _ in self.in_edges.get(node_id, ()):
            step = self.steps.get(source)
            if step is None or step.status in _NOT_FED:
                continue
            count = len(step.outputs.get(port) or ())
            if position < count:
                return source, port, position
            position -= count
        return None

    def matching(self, node_id: str, position: int, target: str) -> list[tuple[str, int]]:
        """The distinct (port, index) output items of `target` that input item `position` of `node_id` came from."""
        found: dict[tuple[str, int], None] = {}
        seen: set[tuple[str, str, int]] = set()
        stack = [(node_id, position)]
        while stack:
            origin = self.origin(*stack.pop())
            if origin is None or origin in seen:
                continue
            seen.add(origin)
            source, port, index = origin
            if source == target:
                found[(port, index)] = None
                continue
            stack.extend((source, p) for p in sources_of(self.steps[source], port, index))
        return list(found)

    def item(self, node_id: str, position: int | None, target: str, name: str) -> Any:
        """The item of `target` (called `name`) that input item `position` of `node_id` came from, or an
        ExpressionError that says why there is not exactly one."""
        ref = f"nodes[{name!r}].item"
        if position is None:
            raise ExpressionError(f"{ref}: cannot tell which input item this is; use nodes[{name!r}].items")
        step = self.steps.get(target)
        if step is None or step.status in _NOT_FED:
            raise ExpressionError(f"{ref}: {name!r} has not run before this node in this run")
        found = self.matching(node_id, position, target)
        if not found:
            raise ExpressionError(f"{ref}: this item does not come from an item of {name!r} (it is not connected "
                                  f"before this node, or a node on the way made items without saying where they "
                                  f"came from); use nodes[{name!r}].items")
        if len(found) > 1:
            raise ExpressionError(f"{ref}: this item comes from {len(found)} items of {name!r}; use "
                                  f"nodes[{name!r}].items to choose one")
        port, index = found[0]
        return step.outputs[port][index]


class NodeView(dict[str, Any]):
    """What `nodes['Name']` shows an expression: `items`, `output`, `status`, and `item`, the item of that node the
    current item came from (looked up only when an expression asks for it)."""

    __slots__ = ("_item",)

    def __init__(self, data: dict[str, Any], item: Callable[[], Any]):
        super().__init__(data)
        self._item = item

    def __missing__(self, key: str) -> Any:
        if key == "item":
            return self._item()
        raise KeyError(key)

"""Validate a flow against the registry and compile it into a Plan, once per flow version.

Everything that can be decided before a run is decided here: node types and versions, config models (validated once
when they hold no expression), compiled expressions, ports, graph shape and the wiring the scheduler walks.
Every problem is reported at once, with its location.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from .. import expressions
from ..errors import ExpressionError, FlowInvalid, NodeError, Problem, format_loc, problems_from_validation
from ..model import Flow, Node, OnError
from ..registry import Registry
from ..sdk import Category, NodeType
from .lineage import order_in_edges
from .scope import node_name

Scope = dict[str, Any]


@dataclass(slots=True, eq=False)
class PlannedNode:
    node: Node
    cls: type[NodeType]
    impl: NodeType
    static_config: BaseModel | None  # validated once, when the config holds no expression
    config_fn: Callable[[Scope], Any] | None  # renders the raw config for one scope, when it holds expressions
    input_ports: tuple[str, ...]
    output_ports: tuple[str, ...]
    # (source port, target node id, target port) for every outgoing edge
    out_edges: list[tuple[str, str, str]] = field(default_factory=list)
    # (source node id, source port, target port) for every incoming edge, in the order input items are counted
    in_edges: list[tuple[str, str, str]] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)  # distinct downstream node ids
    upstream: int = 0  # distinct upstream nodes
    is_trigger: bool = False
    is_sink: bool = False
    #: Its expressions may read `run` (the word appears in its config): only then is the run's signed resume URL
    #: made for it (an HMAC per run otherwise spent on every run of a flow with expressions).
    reads_run: bool = False
    id: str = ""
    name: str = ""
    #: Its side effects must not be repeated (`NodeType.side_effects`, not `retry_safe_with` its config): its step is
    #: recorded as started before it runs, a timeout is not retried, and a run resumed after a stop fails the step
    #: that stop interrupted instead of doing it again.
    unsafe: bool = False
    #: A config without expressions: the `config_for` its steps' contexts get (the same config for every item), made
    #: once here instead of once per step.
    constant_for: Callable[[Any], Any] | None = None

    def __post_init__(self) -> None:
        self.id = self.node.id
        self.name = node_name(self.node, self.cls)
        self.unsafe = self.cls.side_effects and not self.cls.retry_safe_with(self.node.config)
        if self.config_fn is None:
            config = self.static_config
            self.constant_for = lambda item: config


    def config_for(self, scope: Scope) -> Any:
        """The node's config model for one scope; raises NodeError naming the field."""
        if self.config_fn is None:
            return self.static_config
        raw = expressions.evaluate(self.config_fn, scope)
        try:
            return self.cls.Config.model_validate(raw)
        except ValidationError as exc:
            first = problems_from_validation(exc)[0]
            raise NodeError(f"{first.loc}: {first.message} (after evaluating expressions)", field=first.loc,
                            retryable=False) from None


@dataclass(slots=True, eq=False)
class Plan:
    flow: Flow
    nodes: dict[str, PlannedNode]
    order: list[str]  # a topological order
    triggers: list[str]
    sinks: list[str]
    uses_expressions: bool
    upstream_counts: dict[str, int]
    by_name: dict[str, str]  # display name -> node id, for `nodes['Look up']`
    #: An expression of the flow may read `nodes` (the word appears in one): only then does a run keep each finished
    #: node's view (`nodes['Look up']`) for expressions, a dict per node and run otherwise spent for nothing.
    reads_nodes: bool = True

    def default_trigger(self) -> str:
        for nid in self.triggers:
            if self.nodes[nid].cls.type == "trigger.manual":
                return nid
        return self.triggers[0]


def build_plan(flow: Flow, registry: Registry) -> Plan:
    """Check the whole flow and compile it. Raises FlowInvalid with every problem found."""
    problems: list[Problem] = []
    planned: dict[str, PlannedNode] = {}
    uses_expressions = False
    reads_nodes = False

    for index, node in enumerate(flow.nodes):
        where = f"nodes[{index}]"
        cls = registry.get(node.type, node.version)
        if cls is None:
            if node.type in registry:
                have = ", ".join(str(v) for v in registry.versions(node.type))
                problems.append(Problem(f"{where}.version", f"node type {node.type!r} has no version {node.version} "
                                                            f"(this Flowboard has {have})", node.id))
            else:
                problems.append(Problem(f"{where}.type", f"unknown node type {node.type!r}; `flowboard nodes` lists "
                                                         "the installed ones", node.id))
            continue
        static, config_fn, config_problems = _compile_config(cls, node, where)
        problems.extend(config_problems)
        uses_expressions = uses_expressions or config_fn is not None
        reads_nodes = reads_nodes or (config_fn is not None and _mentions(_NODES_WORD, node.config))
        outputs = tuple(cls.output_ports(node.config))
        if node.settings.on_error is OnError.error_port and "error" not in outputs:
            outputs = (*outputs, "error")
        planned[node.id] = PlannedNode(node=node, cls=cls, impl=cls(), static_config=static, config_fn=config_fn,
                                       input_ports=tuple(cls.inputs), output_ports=outputs,
                                       is_trigger=cls.category is Category.trigger,
                                       reads_run=config_fn is not None and _mentions_run(node.config))

    graph = _Graph(n.id for n in flow.nodes)
    seen_edges: set[tuple[str, str, str, str]] = set()
    for index, edge in enumerate(flow.edges):
        where = f"edges[{index}]"
        ids = {n.id for n in flow.nodes}
        bad = False
        for end, node_id in (("source", edge.source), ("target", edge.target)):
            if node_id not in ids:
                problems.append(Problem(f"{where}.{end}", f"there is no node with id {node_id!r}; connect to an "
                                                          "existing node or delete this connection"))
                bad = True
        if bad:
            continue
        if edge.key in seen_edges:
            problems.append(Problem(where, "this connection appears twice; delete one", edge.target))
            continue
        seen_edges.add(edge.key)
        src, dst = planned.get(edge.source), planned.get(edge.target)
        if src is not None and edge.source_port not in src.output_ports:
            problems.append(Problem(f"{where}.source_port", f"node {edge.source!r} has no output {edge.source_port!r}"
                                    f" (it has {_list(src.output_ports)})", edge.source))
            bad = True
        if dst is not None and edge.target_port not in dst.input_ports:
            has = _list(dst.input_ports) if dst.input_ports else "none: it is a trigger"
            problems.append(Problem(f"{where}.target_port", f"node {edge.target!r} has no input {edge.target_port!r}"
                                    f" (it has {has})", edge.target))
            bad = True
        if edge.source == edge.target:
            problems.append(Problem(where, f"node {edge.source!r} is connected to itself", edge.source))
            continue
        if not bad and src is not None and dst is not None:
            src.out_edges.append((edge.source_port, edge.target, edge.target_port))
            dst.in_edges.append((edge.source, edge.source_port, edge.target_port))
        graph.add_edge(edge.source, edge.target)

    problems.extend(_graph_problems(flow, graph, planned))
    problems.extend(_ambiguous_names(flow, planned))
    if problems:
        raise FlowInvalid(problems)

    order = graph.topological_order()
    assert order is not None  # _graph_problems reported any loop
    for pn in planned.values():
        pn.in_edges = order_in_edges(pn.in_edges)
        pn.targets = list(dict.fromkeys(t for _, t, _ in pn.out_edges))
        pn.is_sink = not pn.targets
        for target in pn.targets:
            planned[target].upstream += 1
    return Plan(
        flow=flow, nodes=planned, order=order,
        triggers=[nid for nid in order if planned[nid].is_trigger],
        sinks=[nid for nid in order if planned[nid].is_sink],
        uses_expressions=uses_expressions,
        upstream_counts={nid: pn.upstream for nid, pn in planned.items()},
        by_name={pn.name: nid for nid, pn in planned.items()},
        reads_nodes=reads_nodes,
    )


_RUN_WORD = re.compile(r"\brun\b")
_NODES_WORD = re.compile(r"\bnodes\b")


def _mentions_run(config: Any) -> bool:
    """Whether the word `run` appears anywhere in the config (keys and fixed values too: erring on the side of yes).
    An expression can reach the `run` variable only by naming it."""
    return _mentions(_RUN_WORD, config)


def _mentions(word: re.Pattern[str], config: Any) -> bool:
    """Whether `word` appears anywhere in the config (keys and fixed values too: erring on the side of yes). An
    expression can reach a variable (`run`, `nodes`) only by naming it."""
    return bool(word.search(json.dumps(config, default=str)))


def _compile_config(cls: type[NodeType], node: Node, where: str
                    ) -> tuple[BaseModel | None, Callable[[Scope], Any] | None, list[Problem]]:
    problems: list[Problem] = []
    expr_paths = expressions.expression_paths(node.config)
    for path in expr_paths:  # a field may refuse expressions (SQL text: values go in as bound parameters)
        field = cls.Config.model_fields.get(str(path[0]))
        extra = field.json_schema_extra if field is not None else None
        if isinstance(extra, dict) and extra.get("expressions") is False:
            problems.append(Problem(format_loc([where, "config", *path]), "expressions are not allowed here; "
                                    f"{extra.get('instead', 'use a fixed value')}", node.id))
    config_fn = None
    if expr_paths:
        try:
            config_fn = expressions.compile_value(node.config)
        except ExpressionError:
            for path in expr_paths:  # locate each bad one
                value: Any = node.config
                for part in path:
                    value = value[part]
                try:
                    expressions.compile_string(value)
                except ExpressionError as exc:
                    problems.append(Problem(format_loc([where, "config", *path]), exc.message, node.id))
    try:
        static = cls.Config.model_validate(node.config)
    except ValidationError as exc:
        static = None
        for problem, err in zip(problems_from_validation(exc, prefix=(where, "config"), node_id=node.id),
                                exc.errors(), strict=True):
            loc = tuple(err["loc"])  # () is the model's own check (SQL: a database is needed): always reported
            if not loc or not any(loc[: len(p)] == p or p[: len(loc)] == loc for p in expr_paths):
                problems.append(problem)
    return (None if config_fn else static), config_fn, problems


class _Graph:
    """The flow's connections as a directed graph: what planning needs of networkx, without importing it (it was a
    fifth of `flowboard serve`'s start-up, measured with `python -X importtime`). The order is networkx's
    `topological_sort` (Kahn's generations, nodes and edges in insertion order), so plans come out the same; only
    a flow that has a loop imports networkx, to name the loop."""

    __slots__ = ("children",)

    def __init__(self, nodes: Any):
        self.children: dict[str, dict[str, None]] = {nid: {} for nid in nodes}

    def add_edge(self, source: str, target: str) -> None:
        self.children.setdefault(source, {})[target] = None
        self.children.setdefault(target, {})

    def in_degree(self, nid: str) -> int:
        return sum(nid in kids for kids in self.children.values())

    def topological_order(self) -> list[str] | None:
        """The nodes in dependency order, or None when the connections form a loop."""
        indegree = dict.fromkeys(self.children, 0)
        for kids in self.children.values():
            for child in kids:
                indegree[child] += 1
        ready = [nid for nid, degree in indegree.items() if degree == 0]
        order: list[str] = []
        while ready:
            generation, ready = ready, []
            for nid in generation:
                for child in self.children[nid]:
                    indegree[child] -= 1
                    if indegree[child] == 0:
                        ready.append(child)
            order.extend(generation)
        return order if len(order) == len(self.children) else None

    def descendants(self, nid: str) -> set[str]:
        seen: set[str] = set()
        todo = list(self.children[nid])
        while todo:
            child = todo.pop()
            if child not in seen:
                seen.add(child)
                todo.extend(self.children[child])
        return seen

    def find_cycle(self) -> list[tuple[str, str]] | None:
        if self.topological_order() is not None:
            return None
        import networkx as nx

        graph = nx.DiGraph()
        graph.add_nodes_from(self.children)
        graph.add_edges_from((nid, child) for nid, kids in self.children.items() for child in kids)
        return list(nx.find_cycle(graph))


def _graph_problems(flow: Flow, graph: _Graph, planned: dict[str, PlannedNode]) -> list[Problem]:
    problems: list[Problem] = []
    index = {n.id: i for i, n in enumerate(flow.nodes)}
    cycle = graph.find_cycle()
    if cycle:
        path = " → ".join([a for a, _ in cycle] + [cycle[0][0]])
        problems.append(Problem("edges", f"the connections form a loop ({path}); a flow must not lead back into "
                                         "itself", cycle[0][0]))
        return problems
    triggers = [nid for nid, pn in planned.items() if pn.is_trigger]
    for nid in triggers:
        if graph.in_degree(nid):
            problems.append(Problem(f"nodes[{index[nid]}]", f"trigger {nid!r} has an incoming connection; triggers "
                                                            "start a flow and take no input", nid))
    if not triggers:
        if flow.nodes and len(planned) == len(flow.nodes):
            problems.append(Problem("nodes", "the flow has no trigger; add one (e.g. a Manual trigger) so it can "
                                             "start"))
        return problems
    reachable: set[str] = set(triggers)
    for nid in triggers:
        reachable |= graph.descendants(nid)
    for node in flow.nodes:
        if node.id not in reachable and node.id in planned:
            problems.append(Problem(f"nodes[{index[node.id]}]", f"node {node.id!r} cannot be reached from any "
                                    "trigger; connect it or delete it", node.id))
    return problems


def _ambiguous_names(flow: Flow, planned: dict[str, PlannedNode]) -> list[Problem]:
    """An expression that reads `nodes['Look up']` while two nodes answer to that name (two nodes called so, or one
    called so and another with that id) cannot know which one it means: refuse it where it is written."""
    answers: dict[str, set[str]] = {}
    for pn in planned.values():
        answers.setdefault(pn.id, set()).add(pn.id)
        answers.setdefault(pn.name, set()).add(pn.id)
    if all(len(ids) == 1 for ids in answers.values()):
        return []
    problems: list[Problem] = []
    for index, node in enumerate(flow.nodes):
        for path in expressions.expression_paths(node.config):
            value: Any = node.config
            for part in path:
                value = value[part]
            for ref in sorted(expressions.referenced_nodes(value)):
                ids = sorted(answers.get(ref, ()))
                if len(ids) > 1:
                    problems.append(Problem(
                        format_loc([f"nodes[{index}]", "config", *path]),
                        f"the expression reads nodes[{ref!r}], but {len(ids)} nodes answer to {ref!r} (ids "
                        f"{', '.join(ids)}); give them different names so the expression knows which one it means",
                        node.id))
    return problems


def _list(ports: tuple[str, ...]) -> str:
    return ", ".join(repr(p) for p in ports)

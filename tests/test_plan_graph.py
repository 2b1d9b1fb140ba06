"""The planner's small graph gives networkx's answers (order, reach, loops) on a corpus of graphs."""

from __future__ import annotations

import random

import networkx as nx
import pytest

from flowboard.engine.plan import _Graph


def _corpus() -> list[tuple[list[str], list[tuple[str, str]]]]:
    rng = random.Random(9)
    graphs: list[tuple[list[str], list[tuple[str, str]]]] = [
        (["t"], []),
        (["t", "a", "b"], [("t", "a"), ("a", "b")]),
        (["t", "a", "b", "c"], [("t", "b"), ("t", "a"), ("a", "c"), ("b", "c")]),  # diamond, edges out of order
        (["b", "t", "a"], [("t", "a"), ("a", "b"), ("t", "b")]),  # nodes listed out of order
        (["t", "u", "a"], [("t", "a"), ("u", "a")]),  # two triggers
        (["t", "a", "b"], [("t", "a"), ("a", "b"), ("b", "a")]),  # loop
        (["t", "a", "b", "c"], [("t", "a"), ("a", "b"), ("b", "c"), ("c", "a")]),  # longer loop
    ]
    for size in (5, 12, 40):
        for _ in range(20):
            ids = [f"n{i}" for i in range(size)]
            rng.shuffle(ids)
            edges = [(ids[i], ids[j]) for i in range(size) for j in range(i + 1, size) if rng.random() < 0.15]
            rng.shuffle(edges)
            if rng.random() < 0.3 and edges:  # sometimes a loop
                a, b = edges[0]
                edges.append((b, a))
            nodes = list(ids)
            rng.shuffle(nodes)
            graphs.append((nodes, edges))
    return graphs


@pytest.mark.parametrize(("nodes", "edges"), _corpus())
def test_same_answers_as_networkx(nodes: list[str], edges: list[tuple[str, str]]) -> None:
    mine = _Graph(nodes)
    theirs = nx.DiGraph()
    theirs.add_nodes_from(nodes)
    for a, b in edges:
        mine.add_edge(a, b)
        theirs.add_edge(a, b)
    loop = not nx.is_directed_acyclic_graph(theirs)
    assert (mine.find_cycle() is not None) == loop
    if loop:
        assert mine.topological_order() is None
        assert mine.find_cycle() == list(nx.find_cycle(theirs))
        return
    assert mine.topological_order() == list(nx.topological_sort(theirs))
    for nid in nodes:
        assert mine.descendants(nid) == nx.descendants(theirs, nid)
        assert mine.in_degree(nid) == theirs.in_degree(nid)

"""The flow-file reader fuzzed with hypothesis: any bytes, any JSON, and near-misses of real flow files either load
or are refused with FlowInvalid whose problems each carry a location and a plain message. Never another exception,
and a file that loads writes back to bytes that load to the same flow."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowboard.engine import build_plan
from flowboard.errors import FlowInvalid
from flowboard.model import dump_flow, parse_flow
from flowboard.registry import default_registry

EXAMPLES = sorted((Path(__file__).resolve().parent.parent / "flows").glob("*.json"))
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text()
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=30)
keys = st.sampled_from(["name", "nodes", "edges", "id", "type", "config", "settings", "source", "target",
                        "source_port", "target_port", "format", "position", "pinned", "version", "x", "y", "timeout",
                        "retries", "on_error", "run_mode", "timezone"])


def check(data: str | bytes | dict[str, Any]) -> None:
    """Loads (and round-trips), or is refused with located, worded problems."""
    registry = default_registry()
    try:
        flow = parse_flow(data)
        build_plan(flow, registry)
    except FlowInvalid as exc:
        assert exc.problems
        for problem in exc.problems:
            assert isinstance(problem.loc, str) and isinstance(problem.message, str) and problem.message.strip()
            assert problem.node_id is None or isinstance(problem.node_id, str)
        return
    again = parse_flow(dump_flow(flow))
    assert again == flow


@FUZZ
@given(st.binary(max_size=300))
def test_any_bytes(raw: bytes) -> None:
    check(raw)


@FUZZ
@given(json_values)
def test_any_json_value(value: Any) -> None:
    check(json.dumps(value))  # Python writes NaN and Infinity too: they must be refused with their place
    if isinstance(value, dict):
        check(value)


def _mutate(doc: Any, path: list[Any], value: Any) -> Any:
    """`doc` with the value at `path` (following existing keys and indices as far as they go) replaced."""
    if not path or not isinstance(doc, dict | list) or not doc:
        return value
    if isinstance(doc, dict):
        key = sorted(doc)[path[0] % len(doc)]
        return {**doc, key: _mutate(doc[key], path[1:], value)}
    index = path[0] % len(doc)
    return [*doc[:index], _mutate(doc[index], path[1:], value), *doc[index + 1:]]


@FUZZ
@given(st.sampled_from(EXAMPLES), st.lists(st.integers(0, 50), min_size=1, max_size=6), json_values)
def test_near_misses_of_the_example_flows(example: Path, path: list[int], value: Any) -> None:
    doc = json.loads(example.read_text())
    mutated = _mutate(doc, path, value)
    check(json.dumps(mutated))


@FUZZ
@given(st.sampled_from(EXAMPLES), keys, json_values)
def test_an_extra_or_replaced_field_anywhere(example: Path, key: str, value: Any) -> None:
    doc = json.loads(example.read_text())
    for node in doc["nodes"][:2]:
        node[key] = value
    check(json.dumps(doc))
    doc[key] = value
    check(json.dumps(doc))


@FUZZ
@given(st.integers(1, 300), st.sampled_from(["[", '{"a":']))
def test_any_nesting(levels: int, opener: str) -> None:
    closer = "]" if opener == "[" else "}"
    check('{"name": "x", "nodes": [{"id": "a", "type": "data.set", "config": {"v": '
          + opener * levels + ("1" if opener != "[" else "") + closer * levels + "}}]}")

"""The flow file: strict reading with located, plain messages; deterministic writing."""

from __future__ import annotations

import json

import pytest

from flowboard.errors import FlowInvalid
from flowboard.model import Flow, dump_flow, flow_schema, parse_flow

from .conftest import make_flow

GOOD = make_flow([{"id": "t", "type": "trigger.manual", "position": {"x": 10, "y": 20}},
                  {"id": "a", "type": "test.add", "name": "Add", "config": {"field": "x", "value": "{{ item.y }}"},
                   "settings": {"retries": 2, "notes": "hello"}}],
                 [("t", "a")], id="good", description="a flow")


def problems(data: object) -> list[str]:
    with pytest.raises(FlowInvalid) as info:
        parse_flow(data if isinstance(data, str | bytes) else json.dumps(data))
    return [str(p) for p in info.value.problems]


def test_round_trip_is_byte_for_byte() -> None:
    text = dump_flow(parse_flow(GOOD))
    assert dump_flow(parse_flow(text)) == text
    assert json.loads(text)["nodes"][1]["settings"] == {"notes": "hello", "retries": 2}  # defaults left out
    reordered = dict(reversed(list(GOOD.items())))
    assert dump_flow(parse_flow(reordered)) == text


def test_every_structural_problem_at_once_with_location() -> None:
    bad = make_flow([{"id": "t", "type": "trigger.manual", "colour": "red"},
                     {"id": "t", "type": "test.add", "settings": {"retries": -1, "on_error": "explode"}},
                     {"type": "test.add"}], [("t", "a")], settings={"timezone": "Mars/Olympus"})
    found = problems(bad)
    assert "nodes[0].colour: is not a known field; remove it or check its spelling" in found
    assert "nodes[1].settings.retries: must be at least 0" in found
    assert any(p.startswith("nodes[1].settings.on_error: must be one of") for p in found)
    assert "nodes[2].id: is required" in found
    assert any("settings.timezone: unknown timezone 'Mars/Olympus'" in p for p in found)


def test_duplicate_ids_and_wrong_format() -> None:
    assert any("two nodes share the id 't'" in p
               for p in problems(make_flow([{"id": "t", "type": "a"}, {"id": "t", "type": "b"}], [])))
    assert problems({**GOOD, "format": 7}) == ["format: this Flowboard reads flow format 1, the file says 7"]


def test_not_json_and_not_an_object() -> None:
    assert problems('{"name": "x", "nodes": [') == ["this is not JSON at line 1, column 25: unexpected end of data"]
    assert problems("[1, 2]") == ["a flow file is a JSON object with `name`, `nodes` and `edges`"]
    assert problems(b"\xff\xfe garbage") == ["this is not JSON: the bytes are not UTF-8 text"]


def test_huge_input_is_refused_before_parsing() -> None:
    found = problems("x" * (10 * 1024 * 1024))
    assert len(found) == 1 and "may be at most 5,242,880 bytes" in found[0]


def test_schema_describes_the_file() -> None:
    schema = flow_schema()
    assert schema["title"] == "Flowboard flow file"
    assert {"nodes", "edges", "name", "format"} <= set(schema["properties"])
    assert Flow.model_validate(GOOD).nodes[1].settings.retries == 2

"""A production trigger's settings are read once, when its flow is switched on, with no item to work expressions out
for: switching on a flow whose trigger settings hold one is refused, located at the node's settings, in the same words
for every kind of trigger (one check, TriggerKind.expression_problems)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from flowboard.errors import FlowInvalid
from flowboard.registry import Registry
from flowboard.services import Flowboard

CORPUS = [
    ({"type": "trigger.webhook", "config": {"path": "{{ item.path }}"}}, "a webhook's"),
    ({"type": "trigger.form", "config": {"path": "ask", "title": "{{ item.title }}",
                                         "fields": [{"name": "a", "label": "A"}]}}, "a form's"),
    ({"type": "trigger.schedule", "config": {"timezone": "{{ item.zone }}"}}, "a schedule's"),
    ({"type": "redis.subscribe", "config": {"channels": ["orders"], "credential": "{{ item.name }}"}},
     "the Redis message trigger's"),
    ({"type": "rabbitmq.consume", "config": {"queue": "orders", "credential": "{{ item.name }}"}},
     "the RabbitMQ message trigger's"),
    ({"type": "mqtt.subscribe", "config": {"topics": ["a/#"], "credential": "{{ item.name }}"}},
     "the MQTT message trigger's"),
]


@pytest.fixture
async def fb(tmp_path: Path, registry: Registry) -> Any:
    board = Flowboard(data_dir=tmp_path, registry=registry)
    yield board
    await board.aclose()


@pytest.mark.parametrize(("trigger", "whose"), CORPUS, ids=[t["type"] for t, _ in CORPUS])
async def test_switching_on_a_trigger_with_expressions_in_its_settings_is_refused(
        fb: Flowboard, trigger: dict[str, Any], whose: str) -> None:
    nodes = [{"id": "start", "type": "trigger.manual"}, {"id": "t", **trigger}]
    fb.import_flow({"id": "f", "name": "F", "nodes": nodes,
                    "edges": []})
    with pytest.raises(FlowInvalid) as refused:
        fb.activate("f")
    (problem,) = refused.value.problems
    assert (problem.loc, problem.node_id) == ("nodes[1].config", "t")
    assert problem.message == f"{whose} settings cannot hold expressions: write the values themselves"
    assert not fb.store.get_flow("f").active

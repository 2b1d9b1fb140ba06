"""MQTT publish node and subscribe trigger against Mosquitto on 127.0.0.1:1883, and a private mosquitto that the test
stops and starts while the trigger listens."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from flowboard.engine import RunStatus
from flowboard.services import Flowboard

from .brokerkit import Finished, broker_fixtures, free_port, private_mosquitto, state_texts, until

pytestmark = pytest.mark.timeout(90)
_up, fb = broker_fixtures("Mosquitto", 1883)


def publish_flow(**config: Any) -> dict[str, Any]:
    return {"id": "pub", "name": "Publish", "nodes": [
        {"id": "start", "type": "trigger.manual"},
        {"id": "send", "type": "mqtt.publish", "config": config}], "edges": [{"source": "start", "target": "send"}]}


async def publish(fb: Flowboard, items: list[dict[str, Any]], **config: Any) -> Any:
    result = await fb.run_draft(fb.parse(publish_flow(**config)), items)
    assert result.status is RunStatus.succeeded, result.error
    return result


def subscribe_flow(flow_id: str, topics: list[str], **config: Any) -> dict[str, Any]:
    return {"id": flow_id, "name": f"Subscribe {flow_id}", "nodes": [
        {"id": "in", "type": "mqtt.subscribe", "config": {"topics": topics, **config}}], "edges": []}


async def test_publish_with_qos_and_retain_reaches_a_subscriber(fb: Flowboard) -> None:
    tag = uuid.uuid4().hex[:8]
    async with aiomqtt.Client("127.0.0.1", 1883) as client:
        await client.subscribe(f"fb/{tag}/#", qos=1)
        await publish(fb, [{"room": "hall", "t": 21.5}, {"room": "cellar", "t": 12}],
                      topic=f"fb/{tag}/{{{{ item.room }}}}", message="{{ item.t }}", qos=1)
        got = []
        async for message in client.messages:
            got.append((message.topic.value, message.payload, message.qos))
            if len(got) == 2:
                break
    assert got == [(f"fb/{tag}/hall", b"21.5", 1), (f"fb/{tag}/cellar", b"12", 1)]
    await publish(fb, [{"state": "on"}], topic=f"fb/{tag}/lamp", retain=True, qos=2)
    async with aiomqtt.Client("127.0.0.1", 1883) as client:  # subscribes later: gets the kept value
        await client.subscribe(f"fb/{tag}/lamp")
        message = await anext(aiter(client.messages))
        assert message.payload == b'{"state":"on"}' and message.retain
        await client.publish(f"fb/{tag}/lamp", b"", retain=True)  # clear it


async def test_a_wildcard_topic_cannot_be_published_to(fb: Flowboard) -> None:
    result = await fb.run_draft(fb.parse(publish_flow(topic="fb/{{ item.x }}")), [{"x": "+"}])
    assert result.status is RunStatus.failed
    assert "has a wildcard (+ or #); publish to one topic" in result.error["message"]


async def test_a_topic_filter_with_a_misplaced_wildcard_is_refused() -> None:
    from flowboard.registry import default_registry

    config = default_registry().get("mqtt.subscribe").Config  # type: ignore[union-attr]
    for bad in ["a/#/b", "a/b+", "a#", ""]:
        with pytest.raises(ValueError, match="is not a topic filter"):
            config(topics=[bad])
    assert config(topics=["a/+/c", "a/#", "#", "+"]).topics == ["a/+/c", "a/#", "#", "+"]


async def test_the_trigger_starts_a_run_per_message_matching_its_wildcards(fb: Flowboard) -> None:
    tag = uuid.uuid4().hex[:8]
    fb.import_flow(subscribe_flow("m1", [f"fb/{tag}/+/temperature", f"fb/{tag}/alarms/#"]))
    finished = Finished(fb, "m1")
    fb.activate("m1")
    await until(lambda: state_texts(fb, "m1") == [
        f"Connected to MQTT broker (topics fb/{tag}/+/temperature, fb/{tag}/alarms/#)"], what="connected")
    async with aiomqtt.Client("127.0.0.1", 1883) as client:
        await client.publish(f"fb/{tag}/hall/temperature", b"21.5")
        await client.publish(f"fb/{tag}/hall/humidity", b"40")  # not subscribed
        await client.publish(f"fb/{tag}/alarms/door/front", b'{"open": true}')
        await client.publish(f"fb/{tag}/alarms", b"hello")  # # matches the parent level too
    await finished.until(3, "succeeded")
    got = sorted((r.input[0]["topic"], r.input[0]["message"]) for r in fb.store.list_runs("m1"))
    assert got == [(f"fb/{tag}/alarms", "hello"), (f"fb/{tag}/alarms/door/front", {"open": True}),
                   (f"fb/{tag}/hall/temperature", 21.5)]
    assert fb.store.list_runs("m1")[0].source == "mqtt broker"
    finished.close()


async def test_the_trigger_reconnects_after_the_broker_restarts(fb: Flowboard, tmp_path: Path) -> None:
    broker = private_mosquitto(tmp_path)
    await broker.start()
    try:
        fb.import_flow(subscribe_flow("m2", ["room/#"], port=broker.port, qos=1))
        finished = Finished(fb, "m2")
        fb.activate("m2")
        await until(lambda: fb.connection_states("m2")[0].up, what="connected")
        await publish(fb, [{"n": 1}], port=broker.port, topic="room/a", qos=1)
        await finished.until(1)
        await broker.stop()
        text = await until(lambda: [t for t in state_texts(fb, "m2") if "connection refused" in t], what="down")
        assert text[0].startswith("Reconnecting to MQTT broker: connection refused") and "next try in" in text[0]
        failed = await fb.run_draft(fb.parse(publish_flow(port=broker.port, topic="room/a")), [{"n": 0}])
        assert "connection refused" in failed.error["message"]
        await broker.start()
        await until(lambda: fb.connection_states("m2")[0].up, what="reconnected")
        await publish(fb, [{"n": 2}], port=broker.port, topic="room/b", qos=1)
        await finished.until(2, "succeeded")
        assert sorted(r.input[0]["message"]["n"] for r in fb.store.list_runs("m2")) == [1, 2]
        finished.close()
    finally:
        await broker.stop()


async def test_test_connection_connects_or_says_refused(fb: Flowboard) -> None:
    fb.store.set_credential("broker", "mqtt", {"host": "127.0.0.1", "port": "1883"})
    assert await fb.test_credential("broker") == "Connected to the MQTT broker at 127.0.0.1:1883"
    port = free_port()
    fb.store.set_credential("broker", "mqtt", {"host": "127.0.0.1", "port": str(port), "user": "ada",
                                               "password": "mqtt-pw-8080"})
    with pytest.raises(ValueError, match=f"Could not reach the MQTT broker at 127.0.0.1:{port}: connection refused"):
        await fb.test_credential("broker")

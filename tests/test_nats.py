"""NATS node (publish, JetStream publish, request) and the JetStream consumer trigger against nats-server on
127.0.0.1:4222: acknowledged after the run, delivered again after a failure and then given up, and no message lost
when the connection is cut while the trigger listens."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import nats
import pytest

from flowboard.engine import RunStatus
from flowboard.services import Flowboard

from .brokerkit import Finished, broker_fixtures, free_port, proxy, state_texts, until

pytestmark = pytest.mark.timeout(90)
_up, fb = broker_fixtures("NATS", 4222)


@pytest.fixture
async def nc() -> Any:
    client = await nats.connect("nats://127.0.0.1:4222")
    streams: list[str] = []
    yield client, streams
    js = client.jetstream()
    for name in streams:
        await js.delete_stream(name)
    await client.close()


def node_flow(action: dict[str, Any], **connection: Any) -> dict[str, Any]:
    return {"id": "cmd", "name": "NATS", "nodes": [
        {"id": "start", "type": "trigger.manual"},
        {"id": "nats", "type": "nats.message", "config": {"action": action, **connection}}],
        "edges": [{"source": "start", "target": "nats"}]}


async def node(fb: Flowboard, action: dict[str, Any], items: list[dict[str, Any]], **connection: Any) -> Any:
    result = await fb.run_draft(fb.parse(node_flow(action, **connection)), items)
    assert result.status is RunStatus.succeeded, result.error
    return result.output


def consumer_flow(flow_id: str, stream: str, subject: str, url: str = "nats://127.0.0.1:4222", sleep: float = 0.01,
                  **config: Any) -> dict[str, Any]:
    return {"id": flow_id, "name": f"Consume {flow_id}", "nodes": [
        {"id": "in", "type": "nats.consume", "config": {"stream": stream, "subject": subject, "url": url, **config}},
        {"id": "wait", "type": "test.sleep", "config": {"seconds": sleep}},
        {"id": "check", "type": "logic.if", "config": {"conditions": [{"field": "message.fail", "op": "is_true"}]}},
        {"id": "stop", "type": "logic.stop", "config": {"message": "message {{ item.message.n }} is marked to fail"}},
    ], "edges": [{"source": "in", "target": "wait"}, {"source": "wait", "target": "check"},
                 {"source": "check", "source_port": "true", "target": "stop"}]}


async def test_publish_and_request_reach_a_real_subscriber(fb: Flowboard, nc: Any) -> None:
    client, _ = nc
    tag = uuid.uuid4().hex[:8]
    got: list[tuple[str, bytes]] = []

    async def seen(msg: Any) -> None:
        got.append((msg.subject, msg.data))

    async def answer(msg: Any) -> None:
        await msg.respond(b'{"price": %d}' % (len(msg.data)))

    await client.subscribe(f"orders.{tag}.>", cb=seen)
    await client.subscribe(f"prices.{tag}", cb=answer)
    await client.flush()
    await node(fb, {"operation": "publish", "subject": f"orders.{tag}.{{{{ item.region }}}}"},
               [{"region": "eu", "n": 1}, {"region": "us", "n": 2}])
    await until(lambda: len(got) == 2, what="two messages")
    assert got == [(f"orders.{tag}.eu", b'{"region":"eu","n":1}'), (f"orders.{tag}.us", b'{"region":"us","n":2}')]
    out = await node(fb, {"operation": "request", "subject": f"prices.{tag}", "message": "{{ item.sku }}"},
                     [{"sku": "abc"}, {"sku": "abcdef"}])
    assert [o["reply"] for o in out] == [{"price": 3}, {"price": 6}]
    failed = await fb.run_draft(fb.parse(node_flow({"operation": "request", "subject": f"nobody.{tag}"})), [{}])
    assert failed.status is RunStatus.failed
    assert failed.error["message"] == f"nobody answers on the subject nobody.{tag}"


async def test_jetstream_publish_says_where_it_was_stored(fb: Flowboard, nc: Any) -> None:
    client, streams = nc
    stream = f"FBTEST{uuid.uuid4().hex[:8]}"
    streams.append(stream)
    await client.jetstream().add_stream(name=stream, subjects=[f"{stream}.>"])
    out = await node(fb, {"operation": "publish", "subject": f"{stream}.a", "jetstream": True}, [{"n": 1}, {"n": 2}])
    assert [(o["stream"], o["sequence"]) for o in out] == [(stream, 1), (stream, 2)]
    failed = await fb.run_draft(fb.parse(node_flow({"operation": "publish", "subject": f"none{stream}.a",
                                                    "jetstream": True})), [{}])
    assert "no JetStream stream stores the subject" in failed.error["message"]


async def test_the_consumer_acks_after_the_run_and_gives_up_after_its_retries(fb: Flowboard, nc: Any) -> None:
    client, streams = nc
    stream = f"FBTEST{uuid.uuid4().hex[:8]}"
    streams.append(stream)
    fb.import_flow(consumer_flow("n1", stream, f"{stream}.>", retries=2, retry_wait=0.05))
    finished = Finished(fb, "n1")
    fb.activate("n1")
    await until(lambda: state_texts(fb, "n1") == [f"Connected to NATS (stream {stream}, {stream}.>)"],
                what="connected")
    js = client.jetstream()
    for n in range(30):
        await js.publish(f"{stream}.orders", b'{"n": %d, "fail": %s}' % (n, b"true" if n == 7 else b"false"))
    await finished.until(29, "succeeded")
    await finished.until(3, "failed")  # message 7: delivered three times, then given up
    runs = fb.store.list_runs("n1", limit=1000)
    assert sorted(r.input[0]["message"]["n"] for r in runs if r.status is RunStatus.succeeded) == \
        [n for n in range(30) if n != 7]
    assert sorted(r.input[0]["delivered"] for r in runs if r.status is RunStatus.failed) == [1, 2, 3]
    for _ in range(400):  # the last acknowledgement (or give-up) goes out just after its run's end: wait for it
        consumer = await js.consumer_info(stream, "flowboard-n1-in")
        if consumer.num_ack_pending == 0 and consumer.num_pending == 0:
            break
        await asyncio.sleep(0.05)
    assert consumer.num_ack_pending == 0 and consumer.num_pending == 0
    assert runs[0].source == "nats"
    finished.close()


async def test_a_cut_connection_reconnects_and_loses_no_message(fb: Flowboard, nc: Any) -> None:
    client, streams = nc
    stream = f"FBTEST{uuid.uuid4().hex[:8]}"
    streams.append(stream)
    async with proxy(4222) as cut:
        fb.import_flow(consumer_flow("n2", stream, f"{stream}.>", url=f"nats://127.0.0.1:{cut.port}", batch=20,
                                     sleep=0.2))
        finished = Finished(fb, "n2")
        fb.activate("n2")
        await until(lambda: fb.connection_states("n2") and fb.connection_states("n2")[0].up, what="connected")
        js = client.jetstream()
        for n in range(100):
            await js.publish(f"{stream}.x", b'{"n": %d}' % n)
        await finished.until(20)
        await cut.cut()
        assert finished.count() < 100
        await until(lambda: "connection refused" in state_texts(fb, "n2")[0], what="refused")
        assert state_texts(fb, "n2")[0].startswith("Reconnecting to NATS: connection refused")
        await cut.restore()
        await until(lambda: fb.connection_states("n2")[0].up, what="reconnected")

        def seen() -> set[int]:
            return {r.input[0]["message"]["n"] for r in fb.store.list_runs("n2", status="succeeded", limit=1000)}

        await until(lambda: len(seen()) == 100, timeout=60, what="every message run")
        assert seen() == set(range(100))
        finished.close()


async def test_a_user_in_the_url_is_refused(fb: Flowboard) -> None:
    with pytest.raises(Exception, match="does not belong in the flow"):
        fb.parse(consumer_flow("n3", "S", "s.>", url="nats://ada:pw12345@127.0.0.1:4222"))


async def test_test_connection_connects_or_says_refused(fb: Flowboard) -> None:
    fb.store.set_credential("bus", "nats", {"url": "nats://127.0.0.1:4222"})
    assert await fb.test_credential("bus") == "Connected to NATS at 127.0.0.1:4222"
    port = free_port()
    fb.store.set_credential("bus", "nats", {"url": f"nats://ada:nats-pw-9090@127.0.0.1:{port}"})
    with pytest.raises(ValueError, match=f"Could not reach NATS at 127.0.0.1:{port}: connection refused") as caught:
        await fb.test_credential("bus")
    assert "nats-pw-9090" not in str(caught.value)

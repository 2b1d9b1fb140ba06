"""The Redis node (get, set with expiry, delete, increment, publish) and the subscribe trigger against the Redis on
127.0.0.1:6379, and a private redis-server (with a password) that the test stops and starts while the trigger
listens."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis

from flowboard.engine import RunStatus
from flowboard.services import Flowboard

from .brokerkit import Finished, broker_fixtures, private_redis, state_texts, until

pytestmark = pytest.mark.timeout(90)
_up, fb = broker_fixtures("Redis", 6379)


def command_flow(action: dict[str, Any], **connection: Any) -> dict[str, Any]:
    return {"id": "cmd", "name": "Redis command", "nodes": [
        {"id": "start", "type": "trigger.manual"},
        {"id": "redis", "type": "redis.command", "config": {"action": action, **connection}}],
        "edges": [{"source": "start", "target": "redis"}]}


async def command(fb: Flowboard, action: dict[str, Any], items: list[dict[str, Any]], **connection: Any) -> Any:
    result = await fb.run_draft(fb.parse(command_flow(action, **connection)), items)
    assert result.status is RunStatus.succeeded, result.error
    return result.output


def subscribe_flow(flow_id: str, channels: list[str], **connection: Any) -> dict[str, Any]:
    return {"id": flow_id, "name": f"Subscribe {flow_id}", "nodes": [
        {"id": "in", "type": "redis.subscribe", "config": {"channels": channels, **connection}}], "edges": []}


async def test_get_set_with_expiry_delete_and_increment_per_item(fb: Flowboard) -> None:
    prefix = f"fb-test:{uuid.uuid4().hex[:8]}"
    items = [{"id": "a", "status": "open", "order": {"n": 1}}, {"id": "b", "status": "paid", "order": {"n": 2}}]
    out = await command(fb, {"operation": "set", "key": prefix + ":{{ item.id }}", "value": "{{ item.status }}"},
                        items)
    assert [o["stored"] for o in out] == [True, True] and out[0]["id"] == "a"
    out = await command(fb, {"operation": "get", "key": prefix + ":{{ item.id }}"}, items)
    assert [o["value"] for o in out] == ["open", "paid"]
    await command(fb, {"operation": "set", "key": prefix + ":json:{{ item.id }}", "value": "{{ item.order }}",
                       "expire": 0.3}, items)
    out = await command(fb, {"operation": "get", "key": prefix + ":json:{{ item.id }}", "as_json": True}, items)
    assert [o["value"] for o in out] == [{"n": 1}, {"n": 2}]
    out = await command(fb, {"operation": "set", "key": prefix + ":{{ item.id }}", "value": "x", "only": "if_new"},
                        items[:1])
    assert out[0]["stored"] is False
    client = redis.Redis()
    try:
        assert await client.get(f"{prefix}:a") == b"open"
        ttl = await client.pttl(f"{prefix}:json:a")
        assert 0 < ttl <= 300
        await asyncio.sleep(0.4)  # past the expiry
        assert await client.exists(f"{prefix}:json:a") == 0  # expired
        out = await command(fb, {"operation": "increment", "key": prefix + ":count", "by": 2, "expire": 60},
                            [{}, {}, {}])
        assert [o["value"] for o in out] == [2, 4, 6]
        assert 0 < await client.ttl(f"{prefix}:count") <= 60
        out = await command(fb, {"operation": "increment", "key": prefix + ":count", "by": -0.5}, [{}])
        assert out[0]["value"] == 5.5
        out = await command(fb, {"operation": "delete", "key": prefix + ":{{ item.id }}"}, [*items, {"id": "zz"}])
        assert [o["deleted"] for o in out] == [True, True, False]
        assert await client.exists(f"{prefix}:a", f"{prefix}:b") == 0
    finally:
        await client.delete(f"{prefix}:count", f"{prefix}:json:b")
        await client.aclose()


async def test_get_of_text_as_json_fails_at_the_item(fb: Flowboard) -> None:
    key = f"fb-test:{uuid.uuid4().hex[:8]}"
    await command(fb, {"operation": "set", "key": key, "value": "plain words", "expire": 5}, [{}])
    result = await fb.run_draft(fb.parse(command_flow({"operation": "get", "key": key, "as_json": True})), [{}])
    assert result.status is RunStatus.failed
    assert "the value is not JSON; turn off 'Read as JSON'" in result.error["message"]


async def test_subscribe_starts_a_run_per_message_on_channels_and_patterns(fb: Flowboard) -> None:
    tag = uuid.uuid4().hex[:8]
    fb.import_flow(subscribe_flow("s1", [f"orders-{tag}", f"sensors-{tag}.*"]))
    finished = Finished(fb, "s1")
    fb.activate("s1")
    await until(lambda: state_texts(fb, "s1") == [f"Connected to Redis (channels orders-{tag}, sensors-{tag}.*)"],
                what="connected")
    out = await command(fb, {"operation": "publish", "channel": f"orders-{tag}"}, [{"order": 7}])
    assert out[0]["receivers"] == 1
    await command(fb, {"operation": "publish", "channel": f"sensors-{tag}.hall", "message": "21.5"}, [{}])
    await command(fb, {"operation": "publish", "channel": f"other-{tag}", "message": "not for us"}, [{}])
    await finished.until(2, "succeeded")
    runs = sorted((r.input[0] for r in fb.store.list_runs("s1")), key=lambda i: i["channel"])
    assert runs == [{"message": {"order": 7}, "channel": f"orders-{tag}", "pattern": None},
                    {"message": 21.5, "channel": f"sensors-{tag}.hall", "pattern": f"sensors-{tag}.*"}]
    assert fb.store.list_runs("s1")[0].source == "redis"
    finished.close()


async def test_the_trigger_reconnects_after_redis_restarts(fb: Flowboard, tmp_path: Path) -> None:
    server = private_redis(tmp_path)
    server.argv = (lambda argv: lambda port: [*argv(port), "--requirepass", "s3cret-redis-pw"])(server.argv)
    await server.start()
    try:
        fb.store.set_credential("cache", "redis", {"url": f"redis://:s3cret-redis-pw@127.0.0.1:{server.port}/0"})
        fb.import_flow(subscribe_flow("s2", ["events"], credential="cache"))
        finished = Finished(fb, "s2")
        fb.activate("s2")
        await until(lambda: fb.connection_states("s2")[0].up, what="connected")
        publish = {"operation": "publish", "channel": "events", "message": "{{ item.n }}"}
        out = await command(fb, publish, [{"n": 1}], credential="cache")
        assert out[0]["receivers"] == 1
        await finished.until(1)
        await server.stop()
        text = await until(lambda: [t for t in state_texts(fb, "s2") if "connection refused" in t], what="down")
        assert text[0].startswith("Reconnecting to Redis: connection refused") and "next try in" in text[0]
        assert "s3cret-redis-pw" not in text[0]
        await server.start()
        await until(lambda: fb.connection_states("s2")[0].up, what="reconnected")
        await command(fb, publish, [{"n": 2}], credential="cache")
        await finished.until(2, "succeeded")
        assert sorted(r.input[0]["message"] for r in fb.store.list_runs("s2")) == [1, 2]
        finished.close()
    finally:
        await server.stop()


async def test_a_password_in_the_url_is_refused(fb: Flowboard) -> None:
    with pytest.raises(Exception, match="a password does not belong in the flow"):
        fb.parse(subscribe_flow("s3", ["x"], url="redis://:pw1234@127.0.0.1:6379/0"))


async def test_test_connection_pings_and_says_a_wrong_password(fb: Flowboard, tmp_path: Path) -> None:
    server = private_redis(tmp_path)
    server.argv = (lambda argv: lambda port: [*argv(port), "--requirepass", "right-pw-5150"])(server.argv)
    await server.start()
    try:
        fb.store.set_credential("cache", "redis", {"url": f"redis://:right-pw-5150@127.0.0.1:{server.port}/0"})
        assert await fb.test_credential("cache") == f"Connected to Redis at 127.0.0.1:{server.port} (PING answered)"
        fb.store.set_credential("cache", "redis", {"url": f"redis://:wrong-pw-6060@127.0.0.1:{server.port}/0"})
        with pytest.raises(ValueError, match=f"Redis at 127.0.0.1:{server.port} refused the password") as caught:
            await fb.test_credential("cache")
        assert "wrong-pw-6060" not in str(caught.value)
    finally:
        await server.stop()
    with pytest.raises(ValueError, match=f"Could not reach Redis at 127.0.0.1:{server.port}: connection refused"):
        await fb.test_credential("cache")

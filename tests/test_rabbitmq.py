"""RabbitMQ publish node and queue-consumer trigger against the RabbitMQ on 127.0.0.1:5672: acknowledged after the run,
retried then dead-lettered, and no message lost when the connection is cut while the trigger listens, nor when a
private RabbitMQ (started once for this module) is restarted and killed while the trigger listens."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

import aio_pika
import pytest

from flowboard.services import Flowboard

from .brokerkit import Finished, Private, broker_fixtures, free_port, private_rabbitmq, proxy, state_texts, until

pytestmark = pytest.mark.timeout(90)
_up, fb = broker_fixtures("RabbitMQ", 5672)


@pytest.fixture(scope="module")
def rabbit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Private]:
    """A RabbitMQ of this module's own (~5 s to boot, once), which its tests may stop, kill and start again."""
    server = private_rabbitmq(tmp_path_factory.mktemp("rabbitmq"))
    server.start_now()
    try:
        yield server
    finally:
        server.stop_now()


@pytest.fixture
async def amqp() -> Any:
    connection = await aio_pika.connect("amqp://guest:guest@127.0.0.1:5672/")
    channel = await connection.channel()
    queues: list[str] = []
    yield channel, queues
    for name in queues:
        await channel.queue_delete(name)
    await connection.close()


def consumer_flow(flow_id: str, queue: str, url: str = "amqp://127.0.0.1:5672/", sleep: float = 0.01,
                  **config: Any) -> dict[str, Any]:
    """The trigger, then a sleep (a run that takes time), then Stop with error for items with `fail`."""
    return {"id": flow_id, "name": f"Consume {flow_id}", "nodes": [
        {"id": "in", "type": "rabbitmq.consume", "config": {"queue": queue, "url": url, **config}},
        {"id": "wait", "type": "test.sleep", "config": {"seconds": sleep}},
        {"id": "check", "type": "logic.if", "config": {"conditions": [{"field": "body.fail", "op": "is_true"}]}},
        {"id": "stop", "type": "logic.stop", "config": {"message": "message {{ item.body.n }} is marked to fail"}},
    ], "edges": [{"source": "in", "target": "wait"}, {"source": "wait", "target": "check"},
                 {"source": "check", "source_port": "true", "target": "stop"}]}


def publish_flow(queue: str) -> dict[str, Any]:
    return {"id": "pub", "name": "Publish", "nodes": [
        {"id": "start", "type": "trigger.manual"},
        {"id": "send", "type": "rabbitmq.publish", "config": {"routing_key": queue,
                                                             "message": {"n": "{{ item.n }}",
                                                                         "fail": "{{ item.fail }}"}}}],
        "edges": [{"source": "start", "target": "send"}]}


async def publish(fb: Flowboard, queue: str, items: list[dict[str, Any]]) -> None:
    result = await fb.run_draft(fb.parse(publish_flow(queue)), items)
    assert result.status.value == "succeeded", result.error


async def queue_depth(channel: Any, name: str) -> int:
    queue = await channel.declare_queue(name, passive=True)
    return int(queue.declaration_result.message_count)


def inputs_of(fb: Flowboard, flow_id: str, status: str = "succeeded") -> list[Any]:
    return [run.input[0]["body"]["n"] for run in fb.store.list_runs(flow_id, status=status, limit=10_000)]


async def test_each_message_starts_one_run_and_is_acknowledged_after_it(fb: Flowboard, amqp: Any) -> None:
    channel, queues = amqp
    queue = f"fb-test-{uuid.uuid4().hex[:8]}"
    queues += [queue, f"{queue}.dead"]
    fb.import_flow(consumer_flow("c1", queue))
    finished = Finished(fb, "c1")
    fb.activate("c1")
    await until(lambda: state_texts(fb, "c1") == [f"Connected to RabbitMQ (queue {queue})"], what="connected")
    await publish(fb, queue, [{"n": n, "fail": False} for n in range(40)])
    await finished.until(40, "succeeded")
    assert sorted(inputs_of(fb, "c1")) == list(range(40))
    run = fb.store.list_runs("c1", limit=1)[0]
    assert run.source == "rabbitmq"
    assert run.input[0]["queue"] == queue and run.input[0]["redelivered"] is False
    assert await queue_depth(channel, queue) == 0  # every message acknowledged, none waiting
    finished.close()


async def test_a_failing_message_is_tried_again_then_goes_to_the_dead_letter_queue(fb: Flowboard,
                                                                                  amqp: Any) -> None:
    channel, queues = amqp
    queue = f"fb-test-{uuid.uuid4().hex[:8]}"
    queues += [queue, f"{queue}.dead"]
    fb.import_flow(consumer_flow("c2", queue, retries=2, retry_wait=0))
    finished = Finished(fb, "c2")
    fb.activate("c2")
    await until(lambda: fb.connection_states("c2") and fb.connection_states("c2")[0].up, what="connected")
    await publish(fb, queue, [{"n": 1, "fail": True}, {"n": 2, "fail": False}])
    await finished.until(1, "succeeded")
    await finished.until(3, "failed")  # the first run and two more tries
    dead = await channel.declare_queue(f"{queue}.dead", passive=True)
    message = await until_message(dead)
    assert message.body == b'{"n":1,"fail":true}'
    await message.ack()
    assert inputs_of(fb, "c2", "failed") == [1, 1, 1]
    assert await queue_depth(channel, queue) == 0
    finished.close()


async def until_message(queue: Any) -> Any:
    """The next message of `queue` (polled: RabbitMQ moves a rejected message to it by itself)."""
    for _ in range(200):
        message = await queue.get(fail=False)
        if message is not None:
            return message
        await asyncio.sleep(0.05)
    raise AssertionError("no message reached the dead-letter queue")


async def test_a_cut_connection_reconnects_and_loses_no_message(fb: Flowboard, amqp: Any) -> None:
    channel, queues = amqp
    queue = f"fb-test-{uuid.uuid4().hex[:8]}"
    queues += [queue, f"{queue}.dead"]
    async with proxy(5672) as cut:
        fb.import_flow(consumer_flow("c3", queue, url=f"amqp://127.0.0.1:{cut.port}/", prefetch=20,
                                     sleep=0.2))
        finished = Finished(fb, "c3")
        fb.activate("c3")
        await until(lambda: fb.connection_states("c3") and fb.connection_states("c3")[0].up, what="connected")
        await publish(fb, queue, [{"n": n, "fail": False} for n in range(200)])
        await finished.until(20)  # runs are going: cut while messages are in work and unacknowledged
        await cut.cut()
        assert finished.count() < 200
        text = await until(lambda: [t for t in state_texts(fb, "c3") if t.startswith("Reconnecting")], what="down")
        assert text[0].startswith("Reconnecting to RabbitMQ: ")
        assert "next try in" in text[0]
        await until(lambda: "connection refused" in state_texts(fb, "c3")[0], what="refused")
        await cut.restore()
        await until(lambda: fb.connection_states("c3")[0].up, what="reconnected")
        await until(lambda: len(set(inputs_of(fb, "c3"))) == 200, timeout=60, what="every message run")
        assert set(inputs_of(fb, "c3")) == set(range(200))  # none lost (some may have run twice: at least once)
        # the cut caught messages in work: they come back, flagged, once the broker has seen the old connection go
        # (which can be after every number has run: their first runs ended, their acknowledgements were cut)
        await until(lambda: any(run.input[0]["redelivered"] for run in fb.store.list_runs("c3", limit=10_000)),
                    timeout=60, what="messages in work at the cut delivered again")
        assert await queue_depth(channel, queue) == 0
        finished.close()


async def test_a_missing_queue_says_so_while_reconnecting(fb: Flowboard) -> None:
    fb.import_flow(consumer_flow("c4", f"fb-absent-{uuid.uuid4().hex[:8]}", declare=False))
    fb.activate("c4")
    text = await until(lambda: [t for t in state_texts(fb, "c4") if t.startswith("Reconnecting")], what="state")
    assert "there is no queue fb-absent-" in text[0] and "turn on 'Create the queues'" in text[0]


async def test_a_password_in_the_url_is_refused_and_a_credential_secret_never_shows(fb: Flowboard) -> None:
    with pytest.raises(Exception, match="a password does not belong in the flow"):
        fb.parse(consumer_flow("c5", "q", url="amqp://guest:hunter2secret@127.0.0.1:5672/"))
    fb.store.set_credential("rabbit", "rabbitmq", {"url": "amqp://guest:wrong-pass-4711@127.0.0.1:5672/"})
    flow = consumer_flow("c5", f"fb-test-{uuid.uuid4().hex[:8]}")
    flow["nodes"][0]["config"]["credential"] = "rabbit"
    fb.import_flow(flow)
    fb.activate("c5")
    text = await until(lambda: [t for t in state_texts(fb, "c5") if t.startswith("Reconnecting")], what="state")
    assert "refused" in text[0]
    assert "wrong-pass-4711" not in text[0]


async def test_publishing_to_a_server_that_is_not_there_says_so(fb: Flowboard) -> None:
    flow = publish_flow("q")
    flow["nodes"][1]["config"]["url"] = f"amqp://127.0.0.1:{free_port()}/"
    result = await fb.run_draft(fb.parse(flow), [{"n": 1}])
    assert result.status.value == "failed"
    assert result.error["message"] == "cannot connect to RabbitMQ: connection refused (is RabbitMQ running at that " \
                                      "address?)"


async def test_test_connection_logs_in_and_says_a_wrong_password(fb: Flowboard) -> None:
    fb.store.set_credential("rabbit", "rabbitmq", {"url": "amqp://guest:guest@127.0.0.1:5672/"})
    assert await fb.test_credential("rabbit") == "Connected to RabbitMQ at 127.0.0.1:5672 and logged in"
    fb.store.set_credential("rabbit", "rabbitmq", {"url": "amqp://guest:wrong-pw-7171@127.0.0.1:5672/"})
    with pytest.raises(ValueError, match=r"RabbitMQ at 127\.0\.0\.1:5672 refused the user and password") as caught:
        await fb.test_credential("rabbit")
    assert "wrong-pw-7171" not in str(caught.value)
    port = free_port()
    fb.store.set_credential("rabbit", "rabbitmq", {"url": f"amqp://guest:guest@127.0.0.1:{port}/"})
    with pytest.raises(ValueError, match=f"Could not reach RabbitMQ at 127.0.0.1:{port}: connection refused"):
        await fb.test_credential("rabbit")


async def test_switching_the_flow_off_leaves_new_messages_in_the_queue(fb: Flowboard, amqp: Any) -> None:
    channel, queues = amqp
    queue = f"fb-test-{uuid.uuid4().hex[:8]}"
    queues += [queue, f"{queue}.dead"]
    fb.import_flow(consumer_flow("c6", queue))
    finished = Finished(fb, "c6")
    fb.activate("c6")
    await until(lambda: fb.connection_states("c6") and fb.connection_states("c6")[0].up, what="connected")
    fb.deactivate("c6")
    assert fb.connection_states("c6") == []
    await publish(fb, queue, [{"n": 1, "fail": False}, {"n": 2, "fail": False}])
    for _ in range(40):  # the consumer is gone once RabbitMQ says so
        if (await channel.declare_queue(queue, passive=True)).declaration_result.consumer_count == 0:
            break
        await asyncio.sleep(0.05)
    assert await queue_depth(channel, queue) == 2 and finished.count() == 0
    fb.activate("c6")
    await finished.until(2, "succeeded")
    assert await queue_depth(channel, queue) == 0
    finished.close()


async def test_the_publish_node_opens_a_new_connection_after_a_cut(fb: Flowboard, amqp: Any) -> None:
    channel, queues = amqp
    queue = f"fb-test-{uuid.uuid4().hex[:8]}"
    queues.append(queue)
    await channel.declare_queue(queue, durable=True)
    async with proxy(5672) as cut:
        flow = publish_flow(queue)
        flow["nodes"][1]["config"]["url"] = f"amqp://127.0.0.1:{cut.port}/"
        parsed = fb.parse(flow)
        assert (await fb.run_draft(parsed, [{"n": 1}])).status.value == "succeeded"
        await cut.cut()
        failed = await fb.run_draft(parsed, [{"n": 2}])
        assert failed.status.value == "failed"
        assert failed.error["message"] in (  # as the cut is seen before the run or during it
            "cannot connect to RabbitMQ: connection refused (is RabbitMQ running at that address?)",
            "RabbitMQ did not take the message: the connection to RabbitMQ was cut (a restart or a network failure); "
            "trying again opens a new one")
        await cut.restore()
        assert (await fb.run_draft(parsed, [{"n": 3}])).status.value == "succeeded"
    assert await queue_depth(channel, queue) == 2  # 1 and 3: nothing sent twice, nothing lost once it succeeded


class ClosedOnFailure(aio_pika.Connection):
    """A connection that closes itself when connecting fails (aio-pika would leave that to the garbage collector,
    which cannot wait for it: a "never awaited" warning)."""

    async def connect(self, timeout: Any = None) -> None:
        try:
            await super().connect(timeout)
        except BaseException:
            with contextlib.suppress(Exception):
                await self.close()
            raise


async def publish_until_taken(url: str, queue: str, numbers: Iterable[int]) -> None:
    """Publish persistent messages the way a careful sender does: each one again until RabbitMQ confirms it, through
    connection refusals while RabbitMQ is down or booting."""
    left = list(numbers)
    while left:
        try:
            connection = await aio_pika.connect(url, timeout=5, connection_class=ClosedOnFailure)
        except (OSError, aio_pika.exceptions.AMQPError):
            await asyncio.sleep(0.1)  # not up yet: a sender retries
            continue
        try:
            channel = await connection.channel()  # publisher confirms: publish() returns once RabbitMQ has it
            while left:
                body = f'{{"n":{left[0]},"fail":false}}'.encode()
                await channel.default_exchange.publish(
                    aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT), routing_key=queue)
                left.pop(0)
        except (OSError, RuntimeError, aio_pika.exceptions.AMQPError):
            pass  # cut before RabbitMQ confirmed the first of `left`: send it again (RuntimeError: a closed channel)
        finally:
            with contextlib.suppress(Exception):
                await connection.close()


@pytest.mark.timeout(300)
async def test_a_restarted_and_a_killed_rabbitmq_lose_no_message(fb: Flowboard, rabbit: Private) -> None:
    """The trigger listens on a private RabbitMQ. It is stopped as a service manager restarts it (SIGTERM) while runs
    are going, messages are published while it is down and booting, then it is killed (-9) in the middle of more work:
    after each start the trigger reconnects, and every confirmed message has its run, none lost."""
    url = f"amqp://guest:guest@127.0.0.1:{rabbit.port}/"
    fb.store.set_credential("private", "rabbitmq", {"url": url})
    queue = f"fb-restart-{uuid.uuid4().hex[:8]}"
    flow = consumer_flow("r1", queue, prefetch=20, sleep=0.2)
    flow["nodes"][0]["config"].pop("url")
    flow["nodes"][0]["config"]["credential"] = "private"
    fb.import_flow(flow)
    finished = Finished(fb, "r1")
    fb.activate("r1")
    await until(lambda: state_texts(fb, "r1") == [f"Connected to RabbitMQ (queue {queue})"], what="connected")
    await publish_until_taken(url, queue, range(200))
    await finished.until(20)  # runs are going: stop while messages are in work and unacknowledged

    await rabbit.stop(graceful=True)
    text = await until(lambda: [t for t in state_texts(fb, "r1") if "connection refused" in t], what="down")
    assert text[0].startswith("Reconnecting to RabbitMQ: connection refused") and "next try in" in text[0]
    assert "guest:guest" not in text[0]
    sender = asyncio.create_task(publish_until_taken(url, queue, range(200, 300)))  # while it is down and booting
    await rabbit.start()
    await sender
    await until(lambda: fb.connection_states("r1")[0].up, timeout=60, what="reconnected after the restart")
    await until(lambda: len(set(inputs_of(fb, "r1"))) >= 220, timeout=60, what="runs again")

    await publish_until_taken(url, queue, range(300, 500))
    await rabbit.stop()  # kill -9 in the middle of the work
    assert len(set(inputs_of(fb, "r1"))) < 500
    await until(lambda: [t for t in state_texts(fb, "r1") if "connection refused" in t], what="down again")
    await rabbit.start()
    await until(lambda: fb.connection_states("r1")[0].up, timeout=60, what="reconnected after the kill")
    await until(lambda: len(set(inputs_of(fb, "r1"))) == 500, timeout=120, what="every message run")
    assert set(inputs_of(fb, "r1")) == set(range(500))  # none lost (some ran twice: delivered at least once)
    runs = fb.store.list_runs("r1", limit=10_000)
    assert any(run.input[0]["redelivered"] for run in runs)  # messages in work at the stop came back after it
    async with await aio_pika.connect(url) as connection:
        channel = await connection.channel()
        assert await queue_depth(channel, queue) == 0  # every message acknowledged after its run
    finished.close()

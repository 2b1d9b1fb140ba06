"""Broker triggers: messages per second into runs.

- RabbitMQ: a queue filled beforehand with N messages, then the consumer trigger of an active flow (trigger, then a
  Set node) takes them: each is a recorded run (SQLite in a temp folder), acknowledged after it. Target >= 2,000/s.
- MQTT: a publisher in another process sends N QoS 0 messages as fast as it can; the subscribe trigger of an active
  flow (trigger, then a Set node) starts a run for each, with recording off. Target >= 5,000/s.

Both against the services on 127.0.0.1 (RabbitMQ :5672, Mosquitto :1883). Prints each figure with the count of runs
and messages, so a lost message shows, and beside it the same client library alone (consume and acknowledge, or
receive, with no Flowboard) measured right after: on a loaded machine the ratio holds better than the figure. Each
also prints this process's CPU time per message (`time.process_time`, which other processes do not add to): the
figure that holds best under load.

    python bench/brokers.py [--messages 10000] [--only rabbitmq|mqtt]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
import uuid
from typing import Any

from flowboard.model import parse_flow
from flowboard.services import Flowboard

SET = {"id": "set", "type": "data.set", "config": {"fields": [{"name": "seen", "value": True}]}}


def flow(trigger: dict[str, Any]) -> dict[str, Any]:
    return {"id": "bench", "name": "bench", "nodes": [{"id": "in", **trigger}, SET],
            "edges": [{"source": "in", "target": "set"}]}


def settle() -> None:
    """What `flowboard serve` does once started (server.py): start-up's objects leave the garbage collector's scans.
    Without it, runs that are in flight together make the collector scan every imported library again and again
    (measured: 82 vs 49 µs of CPU per run, 500 runs in flight, in memory), a cost the server does not have."""
    from flowboard.server import settle_collector

    settle_collector()


class Count:
    """Counts the runs the trigger starts as they end (wrapping the trigger's launcher: the event bus would make the
    engine build an event per node, which a production server without a watcher does not)."""

    def __init__(self, fb: Flowboard, n: int):
        self.n, self.done, self.failed = n, 0, 0
        self.first: float | None = None  # when the first run started
        self.last = 0.0
        self.cpu = False  # also take this process's CPU time at the first run's start and the last run's end
        self.first_cpu = self.last_cpu = 0.0
        self.all = asyncio.Event()
        launcher = fb.listeners.launcher
        run = launcher.run

        async def counted(*args: Any, **kwargs: Any) -> Any:
            if self.first is None:
                self.first = time.perf_counter()
                if self.cpu:
                    self.first_cpu = time.process_time()
            result = await run(*args, **kwargs)
            self.last = time.perf_counter()
            if self.cpu:
                self.last_cpu = time.process_time()
            self.done += 1
            self.failed += result.status.value != "succeeded"
            if self.done >= self.n:
                self.all.set()
            return result

        launcher.run = counted  # type: ignore[method-assign]


async def fill(channel: Any, queue: str, n: int) -> None:
    import aio_pika

    for i in range(n):
        await channel.default_exchange.publish(aio_pika.Message(b'{"n": %d}' % i), routing_key=queue)


async def raw_rabbitmq(channel: Any, connection: Any, n: int) -> tuple[float, float]:
    """aio-pika alone: consume and acknowledge n messages (prefetch 500): messages/s, CPU seconds per message."""
    queue = f"fb-bench-raw-{uuid.uuid4().hex[:8]}"
    await channel.declare_queue(queue, durable=True)
    await fill(channel, queue, n)
    consumer = await connection.channel()
    await consumer.set_qos(prefetch_count=500)
    done, seen = asyncio.Event(), [0]

    async def take(message: Any) -> None:
        await message.ack()
        seen[0] += 1
        if seen[0] == n:
            done.set()

    start, cpu = time.perf_counter(), time.process_time()
    tag = await (await consumer.declare_queue(queue, durable=True)).consume(take)
    await asyncio.wait_for(done.wait(), 300)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    await (await consumer.declare_queue(queue, durable=True)).cancel(tag)
    await channel.queue_delete(queue)
    await consumer.close()
    return n / elapsed, cpu / n


async def rabbitmq(n: int) -> None:
    import aio_pika

    queue = f"fb-bench-{uuid.uuid4().hex[:8]}"
    connection = await aio_pika.connect("amqp://guest:guest@127.0.0.1:5672/")
    channel = await connection.channel()
    await channel.declare_queue(f"{queue}.dead", durable=True)
    await channel.declare_queue(queue, durable=True, arguments={"x-dead-letter-exchange": "",
                                                                "x-dead-letter-routing-key": f"{queue}.dead"})
    await fill(channel, queue, n)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            fb = Flowboard(data_dir=tmp)
            fb.store.save_flow(parse_flow(flow({"type": "rabbitmq.consume",
                                                "config": {"queue": queue, "prefetch": 500}})), None)
            settle()
            count = Count(fb, n)
            start, cpu = time.perf_counter(), time.process_time()
            fb.activate("bench")
            await asyncio.wait_for(count.all.wait(), 600)
            elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
            recorded = len(fb.store.list_runs("bench", status="succeeded", limit=n + 1))
            left = (await channel.declare_queue(queue, passive=True)).declaration_result.message_count
            await fb.aclose()
        rate, (raw, raw_cpu) = n / elapsed, await raw_rabbitmq(channel, connection, n)
        print(f"RabbitMQ consumer trigger, recorded runs: {rate:,.0f} messages/s "
              f"({n} messages in {elapsed:.2f} s from activation; {recorded} succeeded runs recorded, "
              f"{count.failed} failed, {left} left in the queue; target >= 2,000/s); "
              f"CPU {cpu / n * 1e6:.0f} µs per message\n"
              f"  aio-pika alone, consume and acknowledge: {raw:,.0f} messages/s, CPU {raw_cpu * 1e6:.0f} µs per "
              f"message; the trigger is {rate / raw:.0%} of it")
    finally:
        await channel.queue_delete(queue)
        await channel.queue_delete(f"{queue}.dead")
        await connection.close()


PUBLISHER = """
import sys, paho.mqtt.client as mqtt
topic, n = sys.argv[1], int(sys.argv[2])
c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
c.max_queued_messages_set(0)
c.connect("127.0.0.1", 1883)
c.loop_start()
for i in range(n):
    c.publish(topic, b'{"n": %d}' % i, qos=0)
c.loop_stop()
c.disconnect()
"""


async def raw_mqtt(n: int) -> tuple[float, float]:
    """aiomqtt alone: receive n QoS 0 messages from the same publisher: messages/s (first to last message), CPU
    seconds per message received (from the first message on)."""
    import aiomqtt

    topic = f"fb-bench/{uuid.uuid4().hex[:8]}"
    async with aiomqtt.Client("127.0.0.1", 1883) as client:
        await client.subscribe(f"{topic}/#")
        proc = await asyncio.create_subprocess_exec(sys.executable, "-c", PUBLISHER, f"{topic}/x", str(n))
        seen, first, cpu = 0, 0.0, 0.0
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(60):
                async for _ in client.messages:
                    seen += 1
                    if not first:
                        first, cpu = time.perf_counter(), time.process_time()
                    if seen == n:
                        break
        last, cpu = time.perf_counter(), time.process_time() - cpu
        await proc.wait()
    return seen / (last - first), cpu / max(seen - 1, 1)


async def mqtt(n: int) -> None:
    topic = f"fb-bench/{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as tmp:
        fb = Flowboard(data_dir=tmp, record=False)
        fb.store.save_flow(parse_flow(flow({"type": "mqtt.subscribe", "config": {"topics": [f"{topic}/#"]}})), None)
        settle()
        count = Count(fb, n)
        count.cpu = True
        fb.activate("bench")
        while not fb.connection_states("bench")[0].up:
            await asyncio.sleep(0.01)
        start = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(sys.executable, "-c", PUBLISHER, f"{topic}/x", str(n))
        await proc.wait()
        sent = time.perf_counter() - start
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(count.all.wait(), 60)
        await asyncio.sleep(0.5)  # stragglers
        elapsed = count.last - (count.first or start)
        cpu = (count.last_cpu - count.first_cpu) / max(count.done - 1, 1)
        await fb.aclose()
    rate, (raw, raw_cpu) = count.done / elapsed, await raw_mqtt(n)
    print(f"MQTT subscribe trigger, recording off: {rate:,.0f} messages/s "
          f"({count.done} of {n} messages ran in {elapsed:.2f} s from the first run's start to the last run's end; "
          f"the publisher process took {sent:.2f} s with its start; {count.failed} failed; target >= 5,000/s); "
          f"CPU {cpu * 1e6:.0f} µs per message\n"
          f"  aiomqtt alone, receive: {raw:,.0f} messages/s, CPU {raw_cpu * 1e6:.0f} µs per message; the trigger "
          f"is {rate / raw:.0%} of it")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--only", choices=["rabbitmq", "mqtt"])
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    if args.only in (None, "rabbitmq"):
        await rabbitmq(args.messages)
    if args.only in (None, "mqtt"):
        await mqtt(args.messages)


if __name__ == "__main__":
    asyncio.run(main())

"""RabbitMQ: publish messages, and a queue consumer that starts the flow for each message.

The consumer acknowledges a message only after its run succeeded and is recorded. A failed run is tried again (as a
new run) up to `retries` times; then the message is rejected, and RabbitMQ moves it to the dead-letter queue. A
message whose run was going when the connection broke is not acknowledged, so RabbitMQ delivers it again: none is
lost (at least once; a run cut off by a crash may run a second time).
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import json
import logging
from typing import TYPE_CHECKING, Any, cast

from pydantic import Field, model_validator

from flowboard.sdk import (
    Category,
    Context,
    Emit,
    Inputs,
    Listening,
    NodeError,
    NodeType,
    Outputs,
    Server,
    ServerConnection,
)

if TYPE_CHECKING:
    import aio_pika
    import aiormq.abc

DEFAULT_URL = "amqp://127.0.0.1:5672/"


def _not_transport_errors(record: logging.LogRecord) -> bool:
    """aiormq logs a failed connect as an ERROR before raising it; Flowboard says it once, in words, on its own."""
    return not str(record.msg).startswith("error when creating transport")


logging.getLogger("aiormq.connection").addFilter(_not_transport_errors)


RABBITMQ = Server("RabbitMQ", credential_type="rabbitmq", schemes=("amqp", "amqps"), example=DEFAULT_URL,
                  note="(logs in as guest)")


class Connection(ServerConnection):
    server = RABBITMQ
    url: str = RABBITMQ.url_field()
    credential: str | None = RABBITMQ.credential_field()


class PublishConfig(Connection):
    exchange: str = Field("", description="The exchange to publish to. Empty: the default exchange, which delivers "
                          "to the queue named by the routing key.")
    routing_key: str = Field(min_length=1, description="The routing key; with the default exchange, the queue's "
                             "name, e.g. orders")
    message: Any = Field(None, description="What to send, e.g. {{ item.order }}. Empty: the whole item, as JSON. "
                         "Text is sent as it is, anything else as JSON.")
    headers: dict[str, str] = Field(default_factory=dict, description="Message headers (name and value)",
                                    json_schema_extra={"widget": "key_value"})
    persistent: bool = Field(True, description="Keep the message on disk until it is consumed, so it survives a "
                             "RabbitMQ restart (on a durable queue)")


class ConsumeConfig(Connection):
    queue: str = Field(min_length=1, description="The queue to take messages from, e.g. orders",
                       json_schema_extra={"expressions": False})
    dead_letter_queue: str | None = Field(None, description="Where messages go whose runs failed after every try. "
                                          "Empty: the queue's name followed by .dead, e.g. orders.dead",
                                          json_schema_extra={"expressions": False})
    declare: bool = Field(True, title="Create the queues", description="Create the queue (durable, sending rejected "
                          "messages to the dead-letter queue) and the dead-letter queue if they do not exist. Turn it "
                          "off to use a queue set up elsewhere as it is.", json_schema_extra={"expressions": False})
    retries: int = Field(2, ge=0, le=20, description="When a run fails, try the message again this many times "
                         "(each a new run) before it goes to the dead-letter queue",
                         json_schema_extra={"expressions": False})
    retry_wait: float = Field(1.0, ge=0, le=3600, title="Wait between tries (seconds)",
                              description="How long to wait before trying a failed message again",
                              json_schema_extra={"expressions": False})
    prefetch: int = Field(200, ge=1, le=10_000, title="Messages at once", description="At most this many messages "
                          "are being worked on at the same time", json_schema_extra={"expressions": False})

    @model_validator(mode="after")
    def _dead_letter_differs(self) -> ConsumeConfig:
        if self.dead_letter_queue is not None and self.dead_letter_queue.strip() == self.queue.strip():
            raise ValueError("the dead-letter queue must not be the queue itself: failed messages would come back")
        return self

    @property
    def dead_letters(self) -> str:
        return (self.dead_letter_queue or "").strip() or f"{self.queue}.dead"


async def _connect(url: str) -> aio_pika.abc.AbstractConnection:
    import aio_pika

    class Connection(aio_pika.Connection):
        async def connect(self, timeout: Any = None) -> None:
            try:
                await super().connect(timeout)
            except BaseException:  # closed now, or aio-pika closes it when it is collected, without waiting
                with contextlib.suppress(Exception):
                    await self.close()
                raise

    try:
        return await aio_pika.connect(url, timeout=10, client_properties={"connection_name": "flowboard"},
                                      connection_class=Connection)
    except Exception as exc:
        raise NodeError(f"cannot connect to RabbitMQ: {_reason(exc)}") from None


async def _consume_connection(url: str) -> aiormq.abc.AbstractConnection:
    """The consumer's connection, opened with aiormq (which closes what it opened when it fails)."""
    import aiormq

    try:
        return await asyncio.wait_for(aiormq.connect(url, client_properties={"connection_name": "flowboard"}), 10)
    except Exception as exc:
        raise NodeError(f"cannot connect to RabbitMQ: {_reason(exc)}") from None


def _reason(exc: BaseException) -> str:
    for current in (exc, *exc.args):
        if isinstance(current, ConnectionRefusedError) or "Connect call failed" in str(current):
            return "connection refused (is RabbitMQ running at that address?)"
        if isinstance(current, BaseException) and "ACCESS_REFUSED" in str(current):
            return "the user name or password was refused"
        if "unexpectedly closed" in str(current) or isinstance(current, ConnectionResetError):
            return "the connection to RabbitMQ was cut (a restart or a network failure); trying again opens a new one"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def encode(value: Any) -> tuple[bytes, str]:
    """A message body and its content type: text as it is, anything else as JSON."""
    if isinstance(value, str):
        return value.encode(), "text/plain"
    if isinstance(value, bytes):
        return value, "application/octet-stream"
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode(), "application/json"


def decode(body: bytes, content_type: str | None) -> dict[str, Any]:
    """A received body as item fields: JSON data when it is JSON (and not sent as text), else text, else base64."""
    try:
        text = body.decode()
    except UnicodeDecodeError:
        return {"body": base64.b64encode(body).decode("ascii"), "body_encoding": "base64"}
    if content_type not in ("text/plain", "application/octet-stream"):  # text sent as text stays text
        try:
            return {"body": json.loads(text)}
        except ValueError:
            pass
    return {"body": text}


class RabbitPublish(NodeType):
    """Sends one message per item to a RabbitMQ exchange (the default exchange: straight to a queue). The items go
    on unchanged. The connection is opened once and shared by every run."""

    type = "rabbitmq.publish"
    title = "RabbitMQ publish"
    category = Category.integration
    icon = "send"
    description = "Send a message to a RabbitMQ queue or exchange for each item."
    Config = PublishConfig
    side_effects = True

    async def run(self, ctx: Context, config: PublishConfig, inputs: Inputs) -> Outputs:
        import aio_pika

        items = inputs.get("main") or []
        url = await config.server_url(ctx)
        key = ("rabbitmq", url)
        # closed since the last run (RabbitMQ restarted): a new one is opened; nothing was sent
        publisher = await ctx.connection(key, lambda: _open_channel(url), broken=lambda p: p.closed)
        channel = publisher.channel
        try:
            for _, item, cfg in ctx.each(items):
                body, content_type = encode(item if cfg.message is None else cfg.message)
                message = aio_pika.Message(body, content_type=content_type, headers=dict(cfg.headers) or None,
                                           delivery_mode=aio_pika.DeliveryMode.PERSISTENT if cfg.persistent
                                           else aio_pika.DeliveryMode.NOT_PERSISTENT)
                exchange = channel.default_exchange if not cfg.exchange else \
                    await channel.get_exchange(cfg.exchange, ensure=False)
                await exchange.publish(message, routing_key=cfg.routing_key)
        except NodeError:
            raise
        except Exception as exc:
            if publisher.closed:
                await ctx.drop_connection(key)
            raise NodeError(f"RabbitMQ did not take the message: {_reason(exc)}") from None
        return list(items)


class _Publisher:
    """The shared connection of the publish nodes, with a channel whose publish returns once RabbitMQ has the
    message (publisher confirms)."""

    def __init__(self, connection: Any, channel: Any):
        self.connection = connection
        self.channel = channel

    @property
    def closed(self) -> bool:
        return bool(self.connection.is_closed or self.channel.is_closed)

    async def aclose(self) -> None:
        await self.connection.close()


async def _open_channel(url: str) -> _Publisher:
    connection = await _connect(url)
    return _Publisher(connection, await connection.channel(publisher_confirms=True))


class RabbitConsume(NodeType):
    """Starts the flow for each message of a RabbitMQ queue, while the flow is active. Each run gets one item:
    `body` (JSON when the message is JSON, else text), `queue`, `routing_key`, `exchange`, `headers`, `message_id`
    and `redelivered`.

    Delivery: a message is acknowledged only after its run succeeded and is recorded; a failed run is tried again
    `retries` times, then the message goes to the dead-letter queue. A message in work when the connection breaks is
    delivered again: none is lost. When the run mode is skip, a message that comes while a run is going is dropped."""

    type = "rabbitmq.consume"
    title = "RabbitMQ message"
    category = Category.trigger
    icon = "inbox"
    description = "Start the flow for each message in a RabbitMQ queue (acknowledged after the run succeeded)."
    inputs = ()
    Config = ConsumeConfig
    passes_input = True  # its `run` hands on the items it is given: the engine makes such a step itself
    service = "RabbitMQ"

    async def run(self, ctx: Context, config: ConsumeConfig, inputs: Inputs) -> Outputs:
        given = inputs.get("main") or []
        return list(given) or [{"body": {}, "queue": config.queue, "routing_key": config.queue, "exchange": "",
                                "headers": {}, "message_id": None, "redelivered": False}]

    async def listen(self, ctx: Listening, config: ConsumeConfig, emit: Emit) -> None:
        import aiormq.exceptions as errors

        connection = await _consume_connection(await config.server_url(ctx))
        try:
            # The consumer speaks aiormq's public API (the AMQP client under aio-pika) rather than aio-pika's: its
            # channel takes a burst of messages per turn of the event loop (aio-pika's channel buffers 10 frames,
            # three messages, so runs started three at a time and SQLite committed three runs per transaction), and
            # a message comes as it came off the wire, without an aio-pika message object and a task of its own.
            channel = await connection.channel(frame_buffer_size=FRAMES_PER_MESSAGE * min(config.prefetch, BURST))
            await channel.basic_qos(prefetch_count=config.prefetch)
            try:
                if config.declare:
                    await channel.queue_declare(config.dead_letters, durable=True)
                    await channel.queue_declare(config.queue, durable=True, arguments={
                        "x-dead-letter-exchange": "", "x-dead-letter-routing-key": config.dead_letters})
                else:
                    await channel.queue_declare(config.queue, passive=True)
            except errors.ChannelPreconditionFailed:
                raise NodeError(f"the queue {config.queue} exists with other settings than Flowboard makes (durable, "
                                f"dead letters to {config.dead_letters}); turn off 'Create the queues' to use it as "
                                "it is, or name another queue") from None
            except errors.ChannelNotFoundEntity:
                raise NodeError(f"there is no queue {config.queue}; create it, or turn on 'Create the queues'") \
                    from None

            acks = _Acks(channel)

            async def on_message(message: aiormq.abc.DeliveredMessage) -> None:
                tag = cast(int, message.delivery_tag)  # a consumer's delivery always has one
                acks.arrived(tag)
                properties = message.header.properties
                item = {**decode(message.body, properties.content_type), "queue": config.queue,
                        "routing_key": message.routing_key, "exchange": message.exchange or "",
                        "headers": _plain(properties.headers), "message_id": properties.message_id,
                        "redelivered": bool(message.redelivered)}
                for attempt in range(config.retries + 1):
                    if attempt:
                        await asyncio.sleep(config.retry_wait)
                    outcome = await emit([item], wait=True)
                    if outcome != "failed":  # succeeded, or dropped by the run mode
                        acks.settled(tag, True)
                        return
                await channel.basic_reject(tag, requeue=False)  # to the dead-letter queue
                acks.settled(tag, False)

            await channel.basic_consume(config.queue, on_message)
            ctx.connected(f"queue {config.queue}")
            closed = [connection.closing, channel.closing]
            try:
                await asyncio.wait(closed, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in closed:
                    waiter.cancel()
        finally:
            with contextlib.suppress(Exception):  # a half-dead connection may never answer the close
                async with asyncio.timeout(5):
                    await connection.close()
        raise NodeError("RabbitMQ closed the connection")


FRAMES_PER_MESSAGE = 3  # a delivery, its header and (for a message up to the frame size, 128 KiB) its body
BURST = 64  # messages the consumer's channel takes in one turn of the event loop at most


class _Acks:
    """Acknowledges finished messages together: once per turn of the event loop, one `ack(multiple=True)` for the
    newest message below which every message is settled (acknowledged or rejected). Messages finish out of order; a
    message still in work is never covered. Measured: a frame and a syscall less per message."""

    def __init__(self, channel: Any) -> None:
        self.channel = channel
        self.order: collections.deque[int] = collections.deque()  # delivery tags in arrival order, not yet settled
        self.settled_as: dict[int, bool] = {}  # tag -> acknowledge (True) or rejected already (False)
        self.upto: int | None = None  # the newest message to acknowledge with all before it
        self.flush: asyncio.Task[None] | None = None

    def arrived(self, tag: int) -> None:
        self.order.append(tag)

    def settled(self, tag: int, ack: bool) -> None:
        self.settled_as[tag] = ack
        while self.order and self.order[0] in self.settled_as:
            first = self.order.popleft()
            if self.settled_as.pop(first):
                self.upto = first
        if self.upto is not None and self.flush is None:
            self.flush = asyncio.ensure_future(self._flush())

    async def _flush(self) -> None:
        await asyncio.sleep(0)  # the runs that end in this turn join in
        tag, self.upto, self.flush = self.upto, None, None
        with contextlib.suppress(Exception):  # a lost connection: RabbitMQ delivers them again, and listen reconnects
            await self.channel.basic_ack(tag, multiple=True)


def _plain(headers: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in (headers or {}).items():
        if isinstance(value, bytes):
            value = value.decode(errors="replace")
        out[str(key)] = value if isinstance(value, str | int | float | bool | type(None)) else str(value)
    return out

"""NATS: publish (optionally stored by JetStream), request and reply, and a JetStream consumer trigger.

The trigger acknowledges a message after its run succeeded and is recorded; a failed run makes JetStream deliver the
message again after `retry_wait`, up to `retries` more times, and then it is given up (terminated). A message whose
run was going when the connection broke is delivered again: none is lost (at least once).
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from flowboard.sdk import (
    Category,
    Context,
    Emit,
    Inputs,
    Item,
    Listening,
    NodeError,
    NodeType,
    Outputs,
    Server,
    ServerConnection,
    message_bytes,
    message_value,
)

DEFAULT_URL = "nats://127.0.0.1:4222"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


NATS = Server("NATS", credential_type="nats", schemes=("nats", "tls", "ws", "wss"), example=DEFAULT_URL,
              login="a user and password or a token", user_is_secret=True)


class Connection(ServerConnection):
    server = NATS
    url: str = NATS.url_field()
    credential: str | None = NATS.credential_field()


Message = Annotated[Any, Field(None, description="What to send, e.g. {{ item.order }}. Empty: the whole item, as "
                                                 "JSON. Text is sent as it is, anything else as JSON.")]


class Publish(_Strict):
    operation: Literal["publish"] = Field(title="Publish", description="Send a message to a subject")
    subject: str = Field(min_length=1, description="The subject, e.g. orders.{{ item.region }}")
    message: Message
    jetstream: bool = Field(False, title="Wait until the stream has stored it", description="The subject belongs to a "
                            "JetStream stream: wait until the stream has stored the message (the field stream "
                            "names it), and fail when no stream takes it")


class Request(_Strict):
    operation: Literal["request"] = Field(title="Request", description="Send a message and wait for the reply, "
                                          "which goes in the item's field reply")
    subject: str = Field(min_length=1, description="The subject a service answers on, e.g. prices.lookup")
    message: Message
    timeout: float = Field(5.0, gt=0, le=300, title="Wait for the reply (seconds)",
                           description="How long to wait for the reply before the node fails")


Operation = Annotated[Publish | Request, Field(discriminator="operation")]


class NatsConfig(Connection):
    action: Operation = Field(default_factory=lambda: Publish(operation="publish", subject="subject"),
                              json_schema_extra={"widget": "union"})


class ConsumeConfig(Connection):
    stream: str = Field(min_length=1, pattern=r"^[^.*>\s]+$", description="The JetStream stream to read, e.g. "
                        "ORDERS (no dots, spaces or wildcards)", json_schema_extra={"expressions": False})
    subject: str = Field(min_length=1, description="Which of the stream's subjects, e.g. orders.> (> stands for "
                         "every level below, * for one level)", json_schema_extra={"expressions": False})
    create_stream: bool = Field(True, title="Create the stream", description="Create the stream for this subject if "
                                "it does not exist (kept on disk). Turn it off to use a stream set up elsewhere.",
                                json_schema_extra={"expressions": False})
    consumer: str | None = Field(None, title="Consumer name", description="The durable consumer that remembers "
                                 "which messages were handled. Empty: one named after this flow and node.",
                                 pattern=r"^[^.*>\s]+$", json_schema_extra={"expressions": False})
    retries: int = Field(2, ge=0, le=20, description="When a run fails, deliver the message again this many times "
                         "(each a new run), then give it up", json_schema_extra={"expressions": False})
    retry_wait: float = Field(1.0, ge=0, le=3600, title="Wait between tries (seconds)",
                              description="How long JetStream waits before delivering a failed message again",
                              json_schema_extra={"expressions": False})
    batch: int = Field(100, ge=1, le=1000, title="Messages at once", description="At most this many messages are "
                       "being worked on at the same time", json_schema_extra={"expressions": False})


async def _quiet(_: Exception) -> None:
    """nats-py reports connection errors here; Flowboard says them in the node's error or the trigger's state."""


async def _connect(url: str, *, reconnect: bool) -> Any:
    import nats
    import nats.errors

    try:
        return await nats.connect(url, connect_timeout=5, allow_reconnect=reconnect, max_reconnect_attempts=3,
                                  reconnect_time_wait=0.5, error_cb=_quiet, name="flowboard")
    except nats.errors.NoServersError:
        raise NodeError("cannot connect to NATS: connection refused (is the NATS server running at that address?)") \
            from None
    except Exception as exc:
        raise NodeError(f"cannot connect to NATS: {_reason(exc)}") from None


def _reason(exc: BaseException) -> str:
    text = str(exc)
    if "Authorization" in text:
        return "the user, password or token was refused"
    return text.splitlines()[0] if text else type(exc).__name__


class Nats(NodeType):
    """Publishes to NATS subjects, or sends requests and waits for their replies, once per item. The settings are
    worked out for each item. The items go on with `reply` (request) or `stream` and `sequence` (publish stored by
    JetStream) added."""

    type = "nats.message"
    title = "NATS"
    category = Category.integration
    icon = "hub"
    description = "Publish a message to a NATS subject (optionally stored by JetStream), or send a request and wait " \
                  "for the reply."
    Config = NatsConfig
    side_effects = True

    async def run(self, ctx: Context, config: NatsConfig, inputs: Inputs) -> Outputs:
        import nats.errors
        import nats.js.errors

        items = inputs.get("main") or []
        url = await config.server_url(ctx)
        key = ("nats", url)
        # closed: it gave up reconnecting since the last run
        client = await ctx.connection(key, lambda: _connect(url, reconnect=True), broken=lambda c: c.is_closed)
        out: list[Item] = []
        published = False
        for index, item, cfg in ctx.each(items):
            action = cfg.action
            body = message_bytes(item if action.message is None else action.message)
            try:
                if isinstance(action, Request):
                    reply = await client.request(action.subject, body, timeout=action.timeout)
                    out.append({**item, "reply": message_value(reply.data)})
                elif action.jetstream:
                    ack = await client.jetstream().publish(action.subject, body, timeout=10)
                    out.append({**item, "stream": ack.stream, "sequence": ack.seq})
                else:
                    await client.publish(action.subject, body)
                    published = True
                    out.append(item)
            except nats.errors.NoRespondersError:
                raise NodeError(f"nobody answers on the subject {action.subject}", item_index=index,
                                field="action.subject") from None
            except nats.js.errors.NoStreamResponseError:
                raise NodeError(f"no JetStream stream stores the subject {action.subject}; create one, or turn off "
                                "'Wait until the stream has stored it'", item_index=index,
                                field="action.subject") from None
            except nats.errors.TimeoutError:
                raise NodeError(f"no answer on the subject {action.subject} in time", item_index=index) from None
            except nats.errors.Error as exc:
                raise NodeError(f"NATS did not take the message: {_reason(exc)}", item_index=index) from None
        if published:
            await client.flush(timeout=10)  # the server has the messages when the node ends
        return out


class NatsConsume(NodeType):
    """Starts the flow for each message of a JetStream stream, while the flow is active. Each run gets one item:
    `message` (JSON data when it is JSON, else text), `subject`, `stream`, `sequence`, `delivered` (how many times it
    was delivered) and `headers`.

    Delivery: a message is acknowledged only after its run succeeded and is recorded; a failed run makes JetStream
    deliver it again `retries` times, then it is given up. A message in work when the connection breaks is delivered
    again: none is lost. When the run mode is skip, a message that comes while a run is going is dropped."""

    type = "nats.consume"
    title = "NATS JetStream message"
    category = Category.trigger
    icon = "hub"
    description = "Start the flow for each message of a NATS JetStream stream (acknowledged after the run succeeded)."
    inputs = ()
    Config = ConsumeConfig
    passes_input = True  # its `run` hands on the items it is given: the engine makes such a step itself
    service = "NATS"

    async def run(self, ctx: Context, config: ConsumeConfig, inputs: Inputs) -> Outputs:
        given = inputs.get("main") or []
        return list(given) or [{"message": {}, "subject": config.subject, "stream": config.stream, "sequence": 0,
                                "delivered": 1, "headers": {}}]

    async def listen(self, ctx: Listening, config: ConsumeConfig, emit: Emit) -> None:
        import nats.errors
        import nats.js.api as api
        import nats.js.errors

        client = await _connect(await config.server_url(ctx), reconnect=False)
        try:
            js = client.jetstream()
            try:
                await js.stream_info(config.stream)
            except nats.js.errors.NotFoundError:
                if not config.create_stream:
                    raise NodeError(f"there is no stream {config.stream}; create it, or turn on 'Create the "
                                    "stream'") from None
                await js.add_stream(name=config.stream, subjects=[config.subject])
            durable = config.consumer or f"flowboard-{ctx.flow_id}-{ctx.node_id}"
            durable = "".join(c if c.isalnum() or c in "-_" else "_" for c in durable)
            try:
                sub = await js.pull_subscribe(config.subject, durable=durable, stream=config.stream,
                                              config=api.ConsumerConfig(max_deliver=config.retries + 1,
                                                                        ack_wait=300))
            except nats.js.errors.BadRequestError as exc:
                raise NodeError(f"the stream {config.stream} does not take the subject {config.subject}: "
                                f"{exc.description}") from None
            ctx.connected(f"stream {config.stream}, {config.subject}")

            async def handle(msg: Any) -> None:
                meta = msg.metadata
                item = {"message": message_value(msg.data), "subject": msg.subject, "stream": meta.stream,
                        "sequence": meta.sequence.stream, "delivered": meta.num_delivered,
                        "headers": dict(msg.headers or {})}
                outcome = await emit([item], wait=True)
                if outcome != "failed":  # succeeded, or dropped by the run mode
                    await msg.ack()
                elif meta.num_delivered > config.retries:
                    await msg.term()  # tried enough: JetStream stops delivering it
                else:
                    await msg.nak(delay=config.retry_wait)

            while not client.is_closed:
                try:
                    msgs = await sub.fetch(config.batch, timeout=5)
                except nats.errors.TimeoutError:
                    continue
                await asyncio.gather(*(handle(msg) for msg in msgs))
            raise NodeError("the NATS server closed the connection")
        except nats.errors.ConnectionClosedError:
            raise NodeError("the NATS server closed the connection") from None
        finally:
            if not client.is_closed:
                await client.close()

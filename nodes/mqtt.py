"""MQTT (Mosquitto and other brokers): publish with a quality of service and retain, and a subscribe trigger with topic
wildcards (`+` one level, `#` every level below).

Delivery of the trigger: with QoS 0 a message comes at most once, and messages published while the trigger
reconnects are lost. With QoS 1 or 2 the broker keeps the trigger's subscription and the messages published while it
is away (a persistent session) and delivers them after it reconnects; a message is still acknowledged to the broker
when it arrives, before its run, so a crash during the run can lose it.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from flowboard.sdk import (
    Category,
    Context,
    Emit,
    Inputs,
    Listening,
    NodeError,
    NodeType,
    Outputs,
    message_bytes,
    message_value,
)

QoS = Literal[0, 1, 2]
QOS_LABELS = ["0: at most once", "1: at least once", "2: exactly once"]


class Connection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = Field("127.0.0.1", title="Broker", description="The MQTT broker's host name, e.g. 127.0.0.1. For a "
                      "user and password, pick a credential instead.", json_schema_extra={"expressions": False})
    port: int = Field(1883, ge=1, le=65535, description="The broker's port (1883 unless it says otherwise)",
                      json_schema_extra={"expressions": False})
    credential: str | None = Field(None, description="An MQTT broker connection credential (host, port, user and "
                                   "password); used instead of Broker and Port.",
                                   json_schema_extra={"widget": "credential", "credential_types": ["mqtt"]})


class PublishConfig(Connection):
    topic: str = Field(min_length=1, description="The topic to publish to, e.g. sensors/{{ item.room }}/temperature "
                       "(no wildcards)")
    message: Any = Field(None, description="What to send, e.g. {{ item.value }}. Empty: the whole item, as JSON. "
                         "Text is sent as it is, anything else as JSON.")
    qos: QoS = Field(0, title="Quality of service", description="0: sent once, may be lost. 1: repeated until the "
                     "broker confirms, may arrive twice. 2: exactly once.",
                     json_schema_extra={"widget": "select", "enum_labels": QOS_LABELS})
    retain: bool = Field(False, title="Keep as the last value (retain)", description="The broker keeps the message "
                         "as the topic's last value and gives it to every new subscriber")


class SubscribeConfig(Connection):
    topics: list[str] = Field(min_length=1, description="The topics to listen to. + stands for one level and # for "
                              "every level below: sensors/+/temperature, alarms/#",
                              json_schema_extra={"expressions": False})
    qos: QoS = Field(0, title="Quality of service", description="0: messages sent while the trigger reconnects are "
                     "lost. 1 or 2: the broker keeps them and delivers them when it is back.",
                     json_schema_extra={"widget": "select", "enum_labels": QOS_LABELS, "expressions": False})

    @field_validator("topics")
    @classmethod
    def _filters(cls, topics: list[str]) -> list[str]:
        for topic in topics:
            levels = topic.split("/")
            if not topic or any(("#" in level and (level != "#" or i != len(levels) - 1)) or
                                ("+" in level and level != "+") for i, level in enumerate(levels)):
                raise ValueError(f"{topic!r} is not a topic filter: + must be a whole level (a/+/c) and # the whole "
                                 "last level (a/#)")
        return topics


async def _login(ctx: Context | Listening, config: Connection) -> dict[str, Any]:
    if not config.credential:
        return {"hostname": config.host, "port": config.port}
    data = await ctx.credential(config.credential)
    host = str(data.get("host") or "").strip()
    if not host:
        raise NodeError(f"the credential {config.credential!r} has no broker host; open it under Credentials",
                        field="credential", retryable=False)
    try:
        port = int(data.get("port") or 1883)
    except ValueError:
        raise NodeError(f"the port in the credential {config.credential!r} is not a number", field="credential",
                        retryable=False) from None
    return {"hostname": host, "port": port, "username": data.get("user") or None,
            "password": data.get("password") or None}


def _reason(exc: BaseException) -> str:
    current: BaseException | None = exc
    while current is not None:
        if isinstance(current, ConnectionRefusedError):
            return "connection refused (is the broker running at that address?)"
        current = current.__cause__ or current.__context__
    text = str(exc)
    if "Connection refused" in text:
        return "connection refused (is the broker running at that address?)"
    if "Not authorized" in text or "Bad user name or password" in text:
        return "the broker refused the user name or password"
    return text.splitlines()[0] if text else type(exc).__name__


class _Shared:
    """The publish nodes' shared connection to one broker."""

    def __init__(self, client: Any):
        self.client = client

    @property
    def broken(self) -> bool:
        # aiomqtt's own "connection lost" future: aiomqtt (2.5) has no public way to ask whether a client's connection
        # is lost (its message iterator and publish read this future themselves), and a publish on a lost connection
        # may be queued by paho without an error, so the node must know before it sends.
        lost = self.client._disconnected
        if lost.done():
            lost.exception()  # seen: asyncio would warn that nobody looked at it
            return True
        return False

    async def aclose(self) -> None:
        if not self.broken:
            await self.client.__aexit__(None, None, None)


async def _open(login: dict[str, Any]) -> _Shared:
    import aiomqtt

    client = aiomqtt.Client(**login, timeout=10)
    try:
        await client.__aenter__()
    except aiomqtt.MqttError as exc:
        raise NodeError(f"cannot connect to the MQTT broker: {_reason(exc)}") from None
    return _Shared(client)


class MqttPublish(NodeType):
    """Publishes one message per item to an MQTT broker. The items go on unchanged. The connection is opened once and
    shared by every run."""

    type = "mqtt.publish"
    title = "MQTT publish"
    category = Category.integration
    icon = "sensors"
    description = "Publish a message to an MQTT topic for each item (with QoS and retain)."
    Config = PublishConfig
    side_effects = True

    async def run(self, ctx: Context, config: PublishConfig, inputs: Inputs) -> Outputs:
        import aiomqtt

        items = inputs.get("main") or []
        login = await _login(ctx, config)
        key = ("mqtt", tuple(sorted(login.items())))
        shared = await ctx.connection(key, lambda: _open(login), broken=lambda s: s.broken)  # nothing sent yet
        try:
            for index, item, cfg in ctx.each(items):
                if "+" in cfg.topic or "#" in cfg.topic:
                    raise NodeError(f"the topic {cfg.topic!r} has a wildcard (+ or #); publish to one topic",
                                    item_index=index, field="topic", retryable=False)
                await shared.client.publish(cfg.topic, message_bytes(item if cfg.message is None else cfg.message),
                                            qos=cfg.qos, retain=cfg.retain)
        except aiomqtt.MqttError as exc:
            await ctx.drop_connection(key)
            raise NodeError(f"the MQTT broker did not take the message: {_reason(exc)}") from None
        return list(items)


class MqttSubscribe(NodeType):
    """Starts the flow for each message on the MQTT topics, while the flow is active. Each run gets one item:
    `topic`, `message` (JSON data when the message is JSON, else its text), `qos` and `retain` (true for a topic's
    kept last value, sent when the trigger subscribes).

    Delivery: QoS 0 is at most once (messages sent while the trigger reconnects are lost). With QoS 1 or 2 the broker
    keeps them for the trigger and delivers them when it is back; they are acknowledged on arrival, before the run."""

    type = "mqtt.subscribe"
    title = "MQTT message"
    category = Category.trigger
    icon = "sensors"
    description = "Start the flow for each message on MQTT topics (wildcards + and #)."
    inputs = ()
    Config = SubscribeConfig
    passes_input = True  # its `run` hands on the items it is given: the engine makes such a step itself
    service = "MQTT broker"

    async def run(self, ctx: Context, config: SubscribeConfig, inputs: Inputs) -> Outputs:
        given = inputs.get("main") or []
        return list(given) or [{"topic": config.topics[0].replace("+", "x").replace("#", "x"), "message": {},
                                "qos": config.qos, "retain": False}]

    async def listen(self, ctx: Listening, config: SubscribeConfig, emit: Emit) -> None:
        import aiomqtt

        login = await _login(ctx, config)
        keep = config.qos > 0  # the broker keeps the subscription and the messages while the trigger is away
        queues: list[asyncio.Queue[Any]] = []

        class Inbox(asyncio.Queue[Any]):
            """aiomqtt's queue of messages received and not yet read, of the class given as its public `queue_type`,
            so the trigger holds it and takes what is there without a wait."""

            def __init__(self, maxsize: int = 0) -> None:
                super().__init__(maxsize)
                queues.append(self)

        client = aiomqtt.Client(**login, timeout=10, clean_session=not keep, queue_type=Inbox,
                                identifier=f"flowboard-{ctx.flow_id}-{ctx.node_id}"[:64] if keep else None)
        (waiting,) = queues
        try:
            async with client:
                await client.subscribe([(topic, config.qos) for topic in config.topics])
                ctx.connected(f"{'topic' if len(config.topics) == 1 else 'topics'} {', '.join(config.topics)}")
                # aiomqtt's paho client reads one QoS 0 message per wake-up of the socket: a turn of the event loop
                # and three system calls per message. After each message the trigger reads on from the socket itself,
                # a burst at most, before it waits again (measured: 63 -> 47 µs of CPU per message). aiomqtt (2.5)
                # has no public handle on its paho client, so this one private attribute is read, and the burst is
                # skipped when a version of aiomqtt no longer has it.
                paho = getattr(client, "_client", None)
                async for message in client.messages:
                    await emit([_item(message)])
                    for _ in range(BURST):
                        # take the messages that came meanwhile without a wait each (aiomqtt makes a task per wait)
                        while not waiting.empty():
                            await emit([_item(waiting.get_nowait())])
                        if paho is None or not _read_on(paho) or waiting.empty():
                            break
        except aiomqtt.MqttError as exc:
            raise NodeError(_reason(exc)) from exc


BURST = 64  # messages read from the socket after one wake-up at most, before the trigger waits again


def _read_on(paho: Any) -> bool:
    """Read what the socket holds (paho, non-blocking: nothing waiting reads nothing). False when reading failed: the
    connection broke, and aiomqtt's own reader ends it at its next wake-up."""
    try:
        return paho.loop_read() == 0
    except Exception:
        return False


def _item(message: Any) -> dict[str, Any]:
    return {"topic": message.topic.value, "message": message_value(message.payload), "qos": message.qos,
            "retain": bool(message.retain)}

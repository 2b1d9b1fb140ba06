"""Redis: read and write keys (get, set with expiry, delete, increment), publish, and a subscribe trigger.

Redis publish/subscribe delivers a message only to who is subscribed at that moment, once, with no acknowledgement:
at most once. While the trigger reconnects (Redis restarted), messages published meanwhile are not seen. For messages
that must not be lost, use RabbitMQ or NATS JetStream.
"""

from __future__ import annotations

import json
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

DEFAULT_URL = "redis://127.0.0.1:6379/0"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


REDIS = Server("Redis", credential_type="redis", schemes=("redis", "rediss", "unix"), example=DEFAULT_URL,
               address="address and database number", login="a password")


class Connection(ServerConnection):
    server = REDIS
    url: str = REDIS.url_field()
    credential: str | None = REDIS.credential_field()


Key = Annotated[str, Field(min_length=1, description="The key, e.g. session:{{ item.id }}")]


class Get(_Strict):
    operation: Literal["get"] = Field(title="Get", description="Read a key's value into the item's field value "
                                      "(empty when the key does not exist)")
    key: Key
    as_json: bool = Field(False, title="Read as JSON", description="The value is JSON (what Set stores for "
                          "anything but text): give back the data, not the text")


class Set(_Strict):
    operation: Literal["set"] = Field(title="Set", description="Store a value under a key")
    key: Key
    value: Any = Field(description="What to store, e.g. {{ item.status }}. Text is stored as it is, anything else "
                       "as JSON.")
    expire: float | None = Field(None, gt=0, title="Expires after (seconds)", description="Remove the key after "
                                 "this many seconds. Empty: it stays.")
    only: Literal["always", "if_new", "if_exists"] = Field(
        "always", title="Store", description="Whether to store always, only when the key does not exist yet, or "
        "only when it exists. The item's field stored says whether it was stored.",
        json_schema_extra={"widget": "select", "enum_labels": ["always", "only if the key is new",
                                                               "only if the key exists"]})


class Delete(_Strict):
    operation: Literal["delete"] = Field(title="Delete", description="Remove a key; the item's field deleted says "
                                         "whether it existed")
    key: Key


class Increment(_Strict):
    operation: Literal["increment"] = Field(title="Increment", description="Add to the number stored under a key "
                                            "(a missing key counts as 0); the new number goes in the field value")
    key: Key
    by: float = Field(1, description="How much to add; a negative number takes away")
    expire: float | None = Field(None, gt=0, title="Expires after (seconds)", description="Remove the key this many "
                                 "seconds after it was created, e.g. 60 to count per minute. Empty: it stays.")


class Publish(_Strict):
    operation: Literal["publish"] = Field(title="Publish", description="Send a message to a channel; the field "
                                          "receivers says how many subscribers got it")
    channel: str = Field(min_length=1, description="The channel, e.g. orders")
    message: Any = Field(None, description="What to send, e.g. {{ item.order }}. Empty: the whole item, as JSON. "
                         "Text is sent as it is, anything else as JSON.")


Operation = Annotated[Get | Set | Delete | Increment | Publish, Field(discriminator="operation")]


class RedisConfig(Connection):
    action: Operation = Field(default_factory=lambda: Get(operation="get", key="key"),
                              json_schema_extra={"widget": "union"})


class SubscribeConfig(Connection):
    channels: list[str] = Field(min_length=1, description="The channels to listen to. A name with * or ? is a "
                                "pattern: orders.* is every channel that starts with orders.",
                                json_schema_extra={"expressions": False})


def _client(url: str) -> Any:
    import redis.asyncio as redis

    return redis.from_url(url, socket_connect_timeout=10, health_check_interval=30)


def decode(value: bytes | None, as_json: bool) -> Any:
    if value is None:
        return None
    try:
        text = value.decode()
    except UnicodeDecodeError:
        raise NodeError("the value is not text (binary data); Flowboard reads text and JSON values") from None
    if as_json:
        try:
            return json.loads(text)
        except ValueError:
            raise NodeError("the value is not JSON; turn off 'Read as JSON' to get it as text") from None
    return text


class Redis(NodeType):
    """Reads and writes Redis keys and publishes messages, once per item. The settings are worked out for each item,
    so `session:{{ item.id }}` is each item's own key. The items go on with the answer added: `value` (get,
    increment), `stored` (set), `deleted` (delete), `receivers` (publish)."""

    type = "redis.command"
    title = "Redis"
    category = Category.integration
    icon = "memory"
    description = "Get, set (with expiry), delete or increment Redis keys, or publish a message."
    Config = RedisConfig
    side_effects = True

    async def run(self, ctx: Context, config: RedisConfig, inputs: Inputs) -> Outputs:
        import redis.exceptions as errors

        items = inputs.get("main") or []
        url = await config.server_url(ctx)
        client = await ctx.connection(("redis", url), lambda: _open(url))
        out: list[Item] = []
        try:
            if isinstance(config.action, Increment | Publish) and items:
                await _retrying(client.ping)  # a connection broken since the last run is replaced first
            for index, item, cfg in ctx.each(items):
                try:
                    if isinstance(cfg.action, Increment | Publish):  # never sent twice
                        out.append({**item, **await _do(client, cfg.action, item)})
                    else:  # the same result when sent again
                        out.append({**item, **await _retrying(lambda a=cfg.action, i=item: _do(client, a, i))})
                except NodeError as exc:
                    exc.item_index = index
                    raise
        except errors.ConnectionError as exc:
            raise NodeError(f"cannot reach Redis: {_reason(exc)}") from None
        except errors.AuthenticationError:
            raise NodeError("Redis refused the password; check the credential") from None
        except errors.ResponseError as exc:
            raise NodeError(f"Redis refused the command: {exc}") from None
        return out


async def _open(url: str) -> Any:
    return _client(url)


async def _retrying(call: Any) -> Any:
    """`call()`, once more on a broken connection (the pool replaces it): a Redis restarted since the connection was
    opened costs a reconnect, not a failed run. Only for commands with the same result when sent twice."""
    import redis.exceptions as errors

    try:
        return await call()
    except errors.ConnectionError:
        return await call()


async def _do(client: Any, action: Any, item: Item) -> dict[str, Any]:
    if isinstance(action, Get):
        return {"value": decode(await client.get(action.key), action.as_json)}
    if isinstance(action, Set):
        stored = await client.set(action.key, message_bytes(action.value),
                                  px=int(action.expire * 1000) if action.expire else None,
                                  nx=action.only == "if_new", xx=action.only == "if_exists")
        return {"stored": bool(stored)}
    if isinstance(action, Delete):
        return {"deleted": bool(await client.delete(action.key))}
    if isinstance(action, Increment):
        by = action.by
        async with client.pipeline(transaction=True) as pipe:
            if float(by).is_integer():
                pipe.incrby(action.key, int(by))
            else:
                pipe.incrbyfloat(action.key, by)
            if action.expire:
                pipe.pexpire(action.key, int(action.expire * 1000), nx=True)
            value = (await pipe.execute())[0]
        return {"value": float(value) if isinstance(value, bytes | str) else value}
    assert isinstance(action, Publish)
    return {"receivers": int(await client.publish(action.channel, message_bytes(item if action.message is None
                                                                        else action.message)))}


def _reason(exc: BaseException) -> str:
    text = str(exc)
    if "Connection refused" in text or "Connect call failed" in text:
        return "connection refused (is Redis running at that address?)"
    return text.splitlines()[0] if text else type(exc).__name__


class RedisSubscribe(NodeType):
    """Starts the flow for each message published on the Redis channels, while the flow is active. Each run gets
    one item: `message` (JSON data when the message is JSON, else its text), `channel`, and `pattern` when it came
    through a pattern.

    At most once: Redis hands a message only to who is subscribed at that moment and asks for no acknowledgement;
    messages published while the trigger reconnects are not seen."""

    type = "redis.subscribe"
    title = "Redis message"
    category = Category.trigger
    icon = "podcasts"
    description = "Start the flow for each message published on Redis channels (at most once)."
    inputs = ()
    Config = SubscribeConfig
    passes_input = True  # its `run` hands on the items it is given: the engine makes such a step itself
    service = "Redis"

    async def run(self, ctx: Context, config: SubscribeConfig, inputs: Inputs) -> Outputs:
        given = inputs.get("main") or []
        return list(given) or [{"message": {}, "channel": config.channels[0], "pattern": None}]

    async def listen(self, ctx: Listening, config: SubscribeConfig, emit: Emit) -> None:
        import redis.exceptions as errors

        client = _client(await config.server_url(ctx))
        pubsub = client.pubsub()
        patterns = [c for c in config.channels if any(ch in c for ch in "*?[")]
        channels = [c for c in config.channels if c not in patterns]
        try:
            if channels:
                await pubsub.subscribe(*channels)
            if patterns:
                await pubsub.psubscribe(*patterns)
            waiting = len(channels) + len(patterns)  # confirmations before messages can come
            while True:
                message = await pubsub.get_message(timeout=None)
                if message is None:
                    continue
                kind = message["type"]
                if kind in ("subscribe", "psubscribe"):
                    waiting -= 1
                    if waiting == 0:
                        ctx.connected(f"{'channel' if len(config.channels) == 1 else 'channels'} "
                                      f"{', '.join(config.channels)}")
                elif kind in ("message", "pmessage"):
                    pattern = message.get("pattern")
                    await emit([{"message": message_value(message["data"]), "channel": message["channel"].decode(),
                                 "pattern": pattern.decode() if pattern else None}])
        except errors.ConnectionError as exc:
            raise NodeError(_reason(exc)) from exc
        except errors.AuthenticationError:
            raise NodeError("Redis refused the password; check the credential") from None
        finally:
            await pubsub.aclose()
            await client.aclose()

"""The Server field of the nodes that reach a server by URL (Redis, NATS, RabbitMQ): one check, in the SDK, keeps
passwords out of flow files and says which addresses fit, in each node's own words."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from nodes.nats import NatsConfig
from nodes.rabbitmq import PublishConfig
from nodes.redis import RedisConfig

EXTRA = {RedisConfig: {}, NatsConfig: {}, PublishConfig: {"routing_key": "orders"}}

ACCEPTED = [
    (RedisConfig, "redis://127.0.0.1:6379/0"), (RedisConfig, " rediss://cache.example.com:6380/2 "),
    (RedisConfig, "unix:///run/redis.sock"), (RedisConfig, "redis://user@127.0.0.1:6379/0"),
    (NatsConfig, "nats://127.0.0.1:4222"), (NatsConfig, "tls://nats.example.com:4222"),
    (NatsConfig, "wss://nats.example.com/ws"),
    (PublishConfig, "amqp://127.0.0.1:5672/"), (PublishConfig, "amqps://mq.example.com/vhost"),
    (PublishConfig, "amqp://guest@127.0.0.1:5672/"),
]

REFUSED = [
    (RedisConfig, "http://127.0.0.1:6379", "starts with redis://, rediss:// or unix://, e.g. redis://127.0.0.1:6379/0"),
    (RedisConfig, "redis://:hunter2@127.0.0.1:6379/0", "a password does not belong in the flow: put the URL in a Redis "
                                                      "credential"),
    (NatsConfig, "127.0.0.1:4222", "starts with nats://, tls://, ws:// or wss://"),
    (NatsConfig, "nats://s3cr3t-token@127.0.0.1:4222", "a user, password or token does not belong in the flow: put "
                                                       "the URL in a NATS credential"),
    (NatsConfig, "nats://me:pw@127.0.0.1:4222", "a user, password or token does not belong"),
    (PublishConfig, "redis://127.0.0.1", "starts with amqp:// or amqps://, e.g. amqp://127.0.0.1:5672/"),
    (PublishConfig, "amqp://guest:guest@127.0.0.1:5672/", "a password does not belong in the flow: put the URL in a "
                                                          "RabbitMQ credential and pick it under Credential"),
]


@pytest.mark.parametrize(("model", "url"), ACCEPTED)
def test_addresses_of_the_servers_kind_are_taken_as_written(model: type, url: str) -> None:
    assert model(url=url, **EXTRA[model]).url == url.strip()


@pytest.mark.parametrize(("model", "url", "says"), REFUSED)
def test_other_addresses_and_logins_are_refused_at_the_server_field(model: type, url: str, says: str) -> None:
    with pytest.raises(ValidationError) as caught:
        model(url=url, **EXTRA[model])
    (error,) = caught.value.errors()
    assert error["loc"] == ("url",)
    assert says in error["msg"]
    assert "hunter2" not in error["msg"] and "guest:guest" not in error["msg"]


@pytest.mark.parametrize("model", list(EXTRA))
def test_the_default_server_is_the_local_one_and_needs_no_credential(model: type) -> None:
    config = model(**EXTRA[model])
    assert config.url.startswith(("redis://127.0.0.1", "nats://127.0.0.1", "amqp://127.0.0.1"))
    assert config.credential is None

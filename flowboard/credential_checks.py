""""Test connection" for the built-in credential types: each returns a plain sentence saying what worked, or raises
ValueError saying what did not and where to fix it. Messages never contain a secret value."""

from __future__ import annotations

import asyncio
import base64
from typing import Any
from urllib.parse import urlsplit

TIMEOUT = 10.0


def _redact(text: str, data: dict[str, Any]) -> str:
    values = [v for v in data.values() if isinstance(v, str)]
    for value in list(values):
        if "://" in value:  # a URL's password, on its own, too
            try:
                password = urlsplit(value).password
            except ValueError:
                password = None
            if password:
                values.append(password)
    for value in sorted(values, key=len, reverse=True):
        if len(value) >= 4 and value in text:
            text = text.replace(value, "***")
    return text


def http_auth(place: str, data: dict[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """The headers and query parameters that carry a credential of an HTTP-ish type."""
    if place == "bearer":
        return {"Authorization": f"Bearer {data['token']}"}, {}
    if place == "basic":
        encoded = base64.b64encode(f"{data['user']}:{data.get('password', '')}".encode()).decode()
        return {"Authorization": f"Basic {encoded}"}, {}
    if place == "api_key":
        place = data.get("where", "header")
    if place == "query":
        return {}, {data["name"]: data["value"]}
    if place == "cookie":
        return {"Cookie": f"{data['name']}={data['value']}"}, {}
    return {data["name"]: data["value"]}, {}


async def check_http(place: str, data: dict[str, Any]) -> str:
    import httpx

    url = str(data.get("test_url") or "").strip()
    if not url:
        raise ValueError("To test this credential, enter an address to try it on (the last field), e.g. an API's "
                         "/me or /user address, and save")
    if urlsplit(url).scheme not in ("http", "https"):
        raise ValueError("The address to try it on must start with http:// or https://")
    headers, params = http_auth(place, data)
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            response = await client.get(url, headers=headers, params=params)
    except httpx.HTTPError as exc:
        raise ValueError(_redact(f"Could not reach {url}: {exc or type(exc).__name__}", data)) from None
    if response.status_code in (401, 403):
        raise ValueError(f"{url} refused the credential (status {response.status_code}): check the values")
    if response.status_code >= 400:
        raise ValueError(f"{url} answered status {response.status_code}")
    return f"{url} accepted the credential (status {response.status_code})"


async def check_database(data: dict[str, Any]) -> str:
    import sqlalchemy as sa

    from .credential_types import database_url

    url = data.get("url") or database_url(data)

    def connect() -> None:
        engine = sa.create_engine(url, connect_args=_connect_timeout(url))
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        finally:
            engine.dispose()

    try:
        await asyncio.to_thread(connect)
    except Exception as exc:  # any driver's error: say it without the URL
        detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ValueError(_redact(f"Could not connect to the database: {detail or type(exc).__name__}",
                                 {**data, "url": url})) from None
    return "Connected to the database and ran SELECT 1"


def _connect_timeout(url: str) -> dict[str, Any]:
    if url.startswith("postgresql"):
        return {"connect_timeout": int(TIMEOUT)}
    if url.startswith("mysql"):
        return {"connect_timeout": int(TIMEOUT)}
    return {}


async def check_smtp(data: dict[str, Any]) -> str:
    import ssl

    import aiosmtplib

    security = data.get("security") or "starttls"
    port = int(data.get("port") or {"starttls": 587, "tls": 465, "plain": 25}[security])
    context = ssl.create_default_context()
    if data.get("certificate"):
        context.load_verify_locations(cadata=data["certificate"])
    client = aiosmtplib.SMTP(hostname=data["host"], port=port, use_tls=security == "tls",
                             start_tls=security == "starttls", tls_context=context, timeout=TIMEOUT)
    try:
        await client.connect()
        await client.ehlo()
        if data.get("user"):
            await client.login(data["user"], data.get("password", ""))
    except aiosmtplib.SMTPAuthenticationError:
        raise ValueError(f"The mail server {data['host']} refused the user and password") from None
    except (aiosmtplib.SMTPException, OSError) as exc:
        raise ValueError(_redact(f"Could not talk to the mail server {data['host']}:{port}: {exc}", data)) from None
    finally:
        if client.is_connected:
            try:
                await client.quit()
            except aiosmtplib.SMTPException:
                client.close()
    return f"Connected to {data['host']}:{port}" + (" and logged in" if data.get("user") else "")


# -- brokers: connect (and log in), then leave -----------------------------------------------------------------------

def _where(url: str) -> str:
    """host:port of a URL, without user or password."""
    parts = urlsplit(url)
    return f"{parts.hostname or '?'}:{parts.port}" if parts.port else (parts.hostname or "?")


def _refused(exc: BaseException) -> bool:
    text = str(exc)
    return isinstance(exc, ConnectionRefusedError) or "Connect call failed" in text or "Connection refused" in text


async def check_redis(data: dict[str, Any]) -> str:
    import redis.asyncio as redis
    import redis.exceptions as errors

    url = str(data["url"])
    client = redis.from_url(url, socket_connect_timeout=TIMEOUT)
    try:
        await client.ping()
    except errors.AuthenticationError:
        raise ValueError(f"Redis at {_where(url)} refused the password") from None
    except (errors.RedisError, OSError, ValueError) as exc:
        reason = "connection refused" if _refused(exc) else str(exc).splitlines()[0]
        raise ValueError(_redact(f"Could not reach Redis at {_where(url)}: {reason}", data)) from None
    finally:
        await client.aclose()
    return f"Connected to Redis at {_where(url)} (PING answered)"


async def check_rabbitmq(data: dict[str, Any]) -> str:
    import aio_pika

    url = str(data["url"])
    connection = None
    try:
        connection = await aio_pika.connect(url, timeout=TIMEOUT)
    except Exception as exc:
        if "ACCESS_REFUSED" in str(exc):
            raise ValueError(f"RabbitMQ at {_where(url)} refused the user and password") from None
        reason = "connection refused" if _refused(exc) else str(exc).splitlines()[0]
        raise ValueError(_redact(f"Could not reach RabbitMQ at {_where(url)}: {reason}", data)) from None
    finally:
        if connection is not None:
            await connection.close()
    return f"Connected to RabbitMQ at {_where(url)} and logged in"


async def check_mqtt(data: dict[str, Any]) -> str:
    import aiomqtt

    where = f"{data['host']}:{data.get('port') or 1883}"
    try:
        async with aiomqtt.Client(data["host"], int(data.get("port") or 1883), username=data.get("user") or None,
                                  password=data.get("password") or None, timeout=TIMEOUT):
            pass
    except aiomqtt.MqttError as exc:
        text = str(exc)
        if "Not authorized" in text or "Bad user name or password" in text:
            raise ValueError(f"The MQTT broker at {where} refused the user and password") from None
        reason = "connection refused" if _refused(exc) else text.splitlines()[0]
        raise ValueError(_redact(f"Could not reach the MQTT broker at {where}: {reason}",
                                 {"password": data.get("password")})) from None
    return f"Connected to the MQTT broker at {where}" + (" and logged in" if data.get("user") else "")


async def check_nats(data: dict[str, Any]) -> str:
    import nats
    import nats.errors

    url = str(data["url"])

    async def quiet(_: Exception) -> None:
        pass

    try:
        client = await nats.connect(url, connect_timeout=TIMEOUT, allow_reconnect=False, max_reconnect_attempts=1,
                                    reconnect_time_wait=0.2, error_cb=quiet)
    except nats.errors.NoServersError:
        raise ValueError(f"Could not reach NATS at {_where(url)}: connection refused") from None
    except Exception as exc:
        if "Authorization" in str(exc):
            raise ValueError(f"NATS at {_where(url)} refused the user, password or token") from None
        raise ValueError(_redact(f"Could not reach NATS at {_where(url)}: {exc}", data)) from None
    try:
        await client.flush(timeout=int(TIMEOUT))
    finally:
        await client.close()
    return f"Connected to NATS at {_where(url)}"

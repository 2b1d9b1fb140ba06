"""The REST API fuzzed from its own OpenAPI document with schemathesis, against `flowboard serve` with an API key:
no answer is a 5xx, and every answer has a documented status, content type and the shape its schema says.

Bounded: `MAX_EXAMPLES` generated cases per operation, no shrinking: about a minute for the module."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from .clihelp import env_for, flowboard_here

#: Generated cases per operation, beside the explicit cases schemathesis derives from the schema (most of the ~3,000
#: calls). With derandomize they are the same every run: 5 reach the same 119 (operation, status) pairs as 12 did,
#: in 57 s instead of 87 s (load 4.7).
MAX_EXAMPLES = 5
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
GREET = {"id": "greet", "name": "Greet", "nodes": [
    {"id": "start", "type": "trigger.manual"},
    {"id": "hello", "type": "data.set", "config": {"fields": [{"name": "greeting", "value": "Hi {{ item.name }}"}]}}],
    "edges": [{"source": "start", "target": "hello"}]}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    data = tmp_path_factory.mktemp("fuzz")
    (data / "greet.json").write_text(json.dumps(GREET))
    assert flowboard_here(data, "import", str(data / "greet.json")).returncode == 0
    made = flowboard_here(data, "api-key", "create", "fuzz")
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip().splitlines()[-1]
    port = _free_port()
    log = data / "server.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "flowboard", "serve", "--port", str(port), "--no-browser",
                                 "--data-dir", str(data)], env=env_for(data), stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                if httpx.get(f"{url}/openapi.json", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield url, key
        assert "Traceback" not in log.read_text(), log.read_text()[-4000:]
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def api_schema(served: tuple[str, str]) -> Any:
    url, _key = served
    return schemathesis.openapi.from_url(f"{url}/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.mark.timeout(300)  # every operation runs inside this one test; the machines are shared and slow
@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=list(HealthCheck), derandomize=True)
def test_api_answers_every_generated_request_as_documented(case: Any, served: tuple[str, str]) -> None:
    url, key = served
    case.call_and_validate(base_url=url, headers={"X-API-Key": key}, checks=CHECKS, timeout=30)


def test_the_fuzzer_reaches_the_api(served: tuple[str, str]) -> None:
    """The key works, so the fuzzed calls get past authentication (else the fuzzing would only meet 401s)."""
    url, key = served
    flows = httpx.get(f"{url}/api/v1/flows", headers={"X-API-Key": key}).json()["flows"]
    assert "greet" in {f["id"] for f in flows}

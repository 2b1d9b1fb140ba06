"""OpenAPI connectors: what an import costs, and what a connector node adds to each call over the HTTP request node it
calls through.

- import: a made-up document of N operations (each with path and query parameters, a JSON body of $ref'd, nested
  schemas with an enum, a default and a oneOf, a paginated list answer) read, checked, resolved and made into node
  types, median of a few rounds;
- per call: one run of M items against a local aiohttp server, through `api.bench.get_thing` (the connector node)
  and through `http.request` with the same URL, median of rounds; the ratio is the connector's overhead.

    python bench/connectors.py [--operations 200] [--items 500] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from typing import Any

from aiohttp import web
from loopback import serve

from flowboard.model import parse_flow
from flowboard.openapi import load, read_document
from flowboard.openapi_nodes import node_types
from flowboard.services import Flowboard


def document(operations: int, server: str = "http://127.0.0.1:1") -> dict[str, Any]:
    schemas = {
        "Money": {"type": "object", "required": ["amount"], "properties": {
            "amount": {"type": "number"}, "currency": {"type": "string", "enum": ["EUR", "USD"], "default": "EUR"}}},
        "Card": {"type": "object", "required": ["kind", "number"], "properties": {
            "kind": {"const": "card"}, "number": {"type": "string"}}},
        "Bank": {"type": "object", "required": ["kind", "iban"], "properties": {
            "kind": {"const": "bank"}, "iban": {"type": "string"}}},
        "Thing": {"allOf": [{"$ref": "#/components/schemas/Named"}, {"type": "object", "properties": {
            "price": {"$ref": "#/components/schemas/Money"}, "tags": {"type": "array", "items": {"type": "string"}},
            "payment": {"oneOf": [{"$ref": "#/components/schemas/Card"}, {"$ref": "#/components/schemas/Bank"}],
                        "discriminator": {"propertyName": "kind"}}}}]},
        "Named": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}},
        "Page": {"type": "object", "properties": {"items": {"type": "array", "items": {
            "$ref": "#/components/schemas/Thing"}}, "next": {"type": "string"}}},
    }
    paths: dict[str, Any] = {"/things/{id}": {"get": {"operationId": "getThing", "parameters": [
        {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}],
        "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": {
            "$ref": "#/components/schemas/Thing"}}}}}}}}
    for n in range(operations - 1):
        paths[f"/r{n}/{{id}}"] = {"post": {
            "operationId": f"op{n}",
            "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}},
                           {"name": "page", "in": "query", "schema": {"type": "integer", "default": 1}}],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "$ref": "#/components/schemas/Thing"}}}},
            "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": {
                "$ref": "#/components/schemas/Page"}}}}}}}
    return {"openapi": "3.1.0", "info": {"title": "Bench", "version": "1"}, "servers": [{"url": server}],
            "paths": paths, "components": {"schemas": schemas}}


def time_import(operations: int, rounds: int, http: Any) -> float:
    text = json.dumps(document(operations))
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        node_types(load(read_document(text)), http)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


async def time_calls(items: int, rounds: int) -> tuple[float, float]:
    async def thing(request: web.Request) -> web.Response:
        return web.json_response({"name": f"thing {request.match_info['id']}"})

    runner, url = await serve({"/things/{id}": thing})
    with tempfile.TemporaryDirectory() as tmp:
        fb = Flowboard(data_dir=tmp, record=False)
        try:
            fb.connectors.save(fb.connectors.preview(document(2, url)))
            flows = {}
            for kind, node in (("connector", {"type": "api.bench.get_thing", "config": {"id": "{{ item.n }}"}}),
                               ("http", {"type": "http.request", "config": {
                                   "url": url + "/things/{{ item.n }}", "output": "body"}})):
                flow = parse_flow({"name": kind, "nodes": [
                    {"id": "start", "type": "trigger.manual"}, {"id": "call", **node}],
                    "edges": [{"source": "start", "target": "call"}]})
                fb.store.save_flow(flow, None)
                flows[kind] = flow.id
            items = [{"n": n} for n in range(items)]
            times: dict[str, list[float]] = {"connector": [], "http": []}
            for _ in range(rounds):
                for kind, flow_id in flows.items():
                    start = time.perf_counter()
                    result = await fb.run_flow(flow_id, items)
                    times[kind].append(time.perf_counter() - start)
                    assert result.status.value == "succeeded", result
            return statistics.median(times["connector"]), statistics.median(times["http"])
        finally:
            await fb.aclose()
            await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--operations", type=int, default=200)
    parser.add_argument("--items", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    from flowboard.registry import default_registry

    http = default_registry().get("http.request")
    seconds = time_import(args.operations, max(1, args.rounds // 2), http)
    print(f"import of {args.operations} operations: {seconds * 1000:.0f} ms median "
          f"({seconds * 1000 / args.operations:.1f} ms per operation)")
    connector, plain = asyncio.run(time_calls(args.items, args.rounds))
    print(f"{args.items} calls in one run: connector node {connector * 1000:.0f} ms, HTTP request node "
          f"{plain * 1000:.0f} ms median; ratio {connector / plain:.2f}x "
          f"({(connector - plain) / args.items * 1e6:.0f} us more per call)")


if __name__ == "__main__":
    main()

"""A corpus of broken OpenAPI documents: each gets a located error in plain words, and nothing is imported."""

from __future__ import annotations

import json
from typing import Any

import pytest

from flowboard.openapi import ApiInvalid, load, read_document

INFO = {"title": "Broken", "version": "1"}
OK_RESPONSES = {"200": {"description": "ok"}}


def doc(paths: dict[str, Any], **extra: Any) -> str:
    return json.dumps({"openapi": "3.1.0", "info": INFO, "paths": paths, **extra})


CORPUS: list[tuple[str, str | bytes, str, str]] = [
    ("empty", "", "", "the document is empty"),
    ("not text", b"\xff\xfe\x00\x01binary", "", "is not text"),
    ("broken JSON", '{"openapi": "3.1.0",\n  "info": }', "line 2, column 11", "the JSON is broken here"),
    ("broken YAML", "openapi: 3.1.0\ninfo:\n  title: [unclosed\n", "line 4, column 1", "the YAML is broken here"),
    ("a list", "[1, 2]", "", "an OpenAPI document is an object"),
    ("Swagger 2.0", json.dumps({"swagger": "2.0", "info": INFO, "paths": {}}), "swagger", "Swagger 2.0"),
    ("no version", json.dumps({"info": INFO, "paths": {}}), "openapi", "has no `openapi` version"),
    ("version 4", json.dumps({"openapi": "4.0.0", "info": INFO, "paths": {}}), "openapi", "'4.0.0' is not supported"),
    ("info without version", json.dumps({"openapi": "3.1.0", "info": {"title": "x"}, "paths": {}}), "info",
     "the field `version` is missing here"),
    ("nothing at all", json.dumps({"openapi": "3.1.0", "info": INFO}), "",
     "the document needs `paths` (its operations)"),
    ("no operations", doc({}), "paths", "has no operations"),
    ("parameter in body", doc({"/x": {"get": {"parameters": [{"name": "q", "in": "body"}],
                                              "responses": OK_RESPONSES}}}),
     "paths./x.get.parameters[0]", "is not a valid parameter"),
    ("a typo in an operation", doc({"/x": {"get": {"responses": OK_RESPONSES, "sumary": "typo"}}}),
     "paths./x.get", "`sumary` is not allowed here"),
    ("responses not an object", doc({"/x": {"get": {"responses": ["200"]}}}), "paths./x.get.responses",
     "must be an object"),
    ("a $ref to nowhere",
     doc({"/x": {"get": {"responses": {"200": {"$ref": "#/components/responses/Nope"}}}}}), "", "points to nothing"),
    ("path parameter not in the path", doc({"/x": {"get": {
        "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}],
        "responses": OK_RESPONSES}}}), "paths./x.get.parameters",
     "the path /x and its path parameters do not match: {id} must appear"),
    ("placeholder without parameter", doc({"/x/{id}": {"get": {"responses": OK_RESPONSES}}}),
     "paths./x/{id}.get.parameters", "must appear in the path and be described by a parameter"),
    ("the same operationId twice", doc({"/a": {"get": {"operationId": "same", "responses": OK_RESPONSES}},
                                        "/b": {"get": {"operationId": "same", "responses": OK_RESPONSES}}}),
     "paths./b.get", "two operations are called 'same'"),
]


@pytest.mark.parametrize(("text", "loc", "message"), [c[1:] for c in CORPUS], ids=[c[0] for c in CORPUS])
def test_broken_document_gets_a_located_plain_error(text: str | bytes, loc: str, message: str) -> None:
    with pytest.raises(ApiInvalid) as caught:
        load(read_document(text))
    problems = caught.value.problems
    assert any(p.loc == loc and message in p.message for p in problems), [str(p) for p in problems]
    for p in problems:  # plain words: no validator internals
        assert "Failed validating" not in p.message and "schema[" not in p.message, p.message


def test_operations_whose_names_meet_are_told_apart() -> None:
    api = load(read_document(doc({"/items": {"get": {"responses": OK_RESPONSES}},
                                  "/items/": {"get": {"responses": OK_RESPONSES}},
                                  "/Items": {"get": {"operationId": "getItems2", "responses": OK_RESPONSES}}})))
    assert [(op.key, op.path) for op in api.operations.values()] == [
        ("get_items", "/items"), ("get_items_2", "/items/"), ("get_items2", "/Items")]
    assert api.warnings == ["GET /items/ is called get_items_2: get_items was taken by GET /items"]


def test_a_good_document_in_yaml_reads() -> None:
    text = """
openapi: 3.0.3
info: {title: Pet Store, version: "1.0"}
servers: [{url: "https://{region}.pets.example/v1", variables: {region: {default: eu}}}]
components:
  securitySchemes:
    oauth: {type: oauth2, flows: {clientCredentials: {tokenUrl: https://auth.example/token, scopes: {read: r}}}}
  schemas:
    Pet:
      allOf:
        - {$ref: "#/components/schemas/Named"}
        - type: object
          required: [kind]
          properties:
            kind: {type: string, enum: [cat, dog], nullable: true}
            parent: {$ref: "#/components/schemas/Pet"}
    Named: {type: object, required: [name], properties: {name: {type: string}}}
security: [{oauth: [read]}]
paths:
  /pets:
    get:
      operationId: listPets
      parameters:
        - {name: cursor, in: query, schema: {type: string}}
      responses:
        "200":
          description: ok
          content:
            application/json:
              schema:
                type: object
                properties:
                  data: {type: array, items: {$ref: "#/components/schemas/Pet"}}
                  meta: {type: object, properties: {next_cursor: {type: string}}}
"""
    api = load(read_document(text))
    assert api.name == "pet_store" and api.server == "https://eu.pets.example/v1"
    op = api.operations["list_pets"]
    assert op.schemes == ["oauth"] and api.schemes["oauth"].token_url == "https://auth.example/token"
    assert op.pagination == {"type": "cursor", "records": "data", "parameter": "cursor",
                             "cursor_field": "meta.next_cursor"}
    pet = op.response["properties"]["data"]["items"]  # type: ignore[index]
    assert pet["required"] == ["name", "kind"]  # allOf merged
    assert pet["properties"]["kind"]["type"] == ["string", "null"]  # 3.0 nullable, the 3.1 way
    assert pet["properties"]["parent"] == {}  # a recursive $ref: any JSON there


def test_fields_go_where_the_operation_says() -> None:
    """Each field of a generated form lands in its place of the request: path (escaped), query (a list repeated),
    header, cookie, body; names that clash with the node's own fields are told apart; read-only properties are not
    asked for; a deprecated operation says so."""
    from flowboard.openapi_nodes import make_type
    from flowboard.registry import default_registry

    text = json.dumps({"openapi": "3.1.0", "info": INFO, "servers": [{"url": "https://api.example/v2/"}], "paths": {
        "/files/{path}": {"put": {
            "operationId": "putFile", "deprecated": True,
            "parameters": [
                {"name": "path", "in": "path", "required": True, "schema": {"type": "string"}},
                {"name": "tag", "in": "query", "schema": {"type": "array", "items": {"type": "string"}}},
                {"name": "timeout", "in": "query", "schema": {"type": "integer"}},
                {"name": "X-Trace", "in": "header", "schema": {"type": "string"}},
                {"name": "session", "in": "cookie", "schema": {"type": "string"}}],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["content"], "properties": {
                    "id": {"type": "integer", "readOnly": True}, "content": {"type": "string"},
                    "mode": {"type": "string", "enum": ["0644", "0755"], "default": "0644"}}}}}},
            "responses": {"204": {"description": "stored"}}}}}})
    api = load(read_document(text))
    cls = make_type(api, api.operations["put_file"], default_registry().get("http.request"))  # type: ignore[arg-type]
    assert cls.title == "Put file (deprecated)"
    props = cls.Config.model_json_schema()["properties"]
    assert "id" not in props and props["mode"]["enum"] == ["0644", "0755"] and props["mode"]["default"] == "0644"
    assert {"path", "tag", "query_timeout", "x_trace", "session", "content", "timeout", "server"} <= set(props)
    config = cls.Config.model_validate({"path": "a b/c.txt", "tag": ["x", "y"], "query_timeout": 5,
                                        "x_trace": "t-1", "session": "s 1", "content": "hello"})
    http = cls()._http_config(config)  # type: ignore[attr-defined]
    assert http.method == "PUT" and http.url == "https://api.example/v2/files/a%20b%2Fc.txt"
    assert [(p.name, p.value) for p in http.query] == [("tag", "x"), ("tag", "y"), ("timeout", "5")]
    assert [(p.name, p.value) for p in http.headers] == [("X-Trace", "t-1"), ("Cookie", "session=s%201")]
    assert http.body.type == "json" and http.body.data == {"content": "hello", "mode": "0644"}
    assert http.timeout == 30


def test_references_outside_the_document_are_never_followed(tmp_path: Any) -> None:
    """A document must not make the server read its files or call other hosts: a `$ref` to a file or a web address
    is refused in words, and nothing is read or fetched."""
    from tests.servers import ThreadedHttpServer

    secret_file = tmp_path / "secret.json"
    secret_file.write_text('{"type": "string", "description": "FILE-CONTENT-MARKER"}')
    with ThreadedHttpServer() as server:
        for ref in (secret_file.as_uri(), server.url("/schema.json"), "other.yaml#/Thing"):
            text = doc({"/a": {"get": {"parameters": [{"name": "q", "in": "query", "schema": {"$ref": ref}}],
                                       "responses": OK_RESPONSES}}})
            with pytest.raises(ApiInvalid) as caught:
                load(read_document(text))
            assert f"`$ref: {ref}` is outside the document" in str(caught.value)
            assert "FILE-CONTENT-MARKER" not in str(caught.value)
        assert server.requests == []


def test_a_yaml_bomb_is_refused_quickly() -> None:
    levels = ["a: &a [x, x, x, x, x, x, x, x, x]"] + [
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]" for i in range(8)]
    with pytest.raises(ApiInvalid, match="more than 2,000,000 values once its repeated parts"):
        read_document("\n".join(levels) + "\n")
    with pytest.raises(ApiInvalid, match="nests too deeply"):
        read_document("a: &a [1, *a]\n")


def test_list_shapes_become_items_and_pages() -> None:
    """The answer's shape says how a list is read: records in a wrapper object, the next page in the Link header,
    or an offset and a limit."""
    listing = {"type": "array", "items": {"type": "object"}}

    def answer(schema: dict[str, Any], **extra: Any) -> dict[str, Any]:
        return {"200": {"description": "ok", "content": {"application/json": {"schema": schema}}, **extra}}

    api = load(read_document(doc({
        "/events": {"get": {"operationId": "events", "responses": answer(listing, headers={
            "Link": {"schema": {"type": "string"}}})}},
        "/tags": {"get": {"operationId": "tags", "responses": answer({"type": "object", "properties": {
            "data": listing, "count": {"type": "integer"}}})}},
        "/rows": {"get": {"operationId": "rows", "parameters": [
            {"name": "offset", "in": "query", "schema": {"type": "integer"}},
            {"name": "limit", "in": "query", "schema": {"type": "integer", "default": 25, "maximum": 100}}],
            "responses": answer({"type": "object", "properties": {"results": listing}})}},
        "/user": {"get": {"operationId": "user", "responses": answer({"type": "object", "properties": {
            "name": {"type": "string"}, "roles": listing}})}},
    })))
    ops = api.operations
    assert ops["events"].pagination == {"type": "next_link", "records": "", "next_field": ""}
    assert ops["tags"].pagination is None and ops["tags"].records == "data"
    assert ops["rows"].pagination == {"type": "offset", "records": "results", "parameter": "offset",
                                      "limit_parameter": "limit", "limit": 25}
    assert ops["user"].pagination is None and ops["user"].records == ""  # one object with a list in it: one item

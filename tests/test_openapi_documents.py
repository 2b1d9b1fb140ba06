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

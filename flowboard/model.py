"""The flow file: Flowboard's public format.

One JSON document per flow. Reading is strict and reports every problem at once, each with its location; writing
is deterministic (same flow, same bytes) so flows diff well in git. This module knows nothing but pydantic: whether a
node's type exists and whether its config fits is checked by the engine's planner, which knows the registry.
"""

from __future__ import annotations

import json
import re
import uuid
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import FlowInvalid, Problem, problems_from_validation
from .jsonlimits import JsonRefused, check_nesting, read_json

FORMAT = 1
MAX_FLOW_BYTES = 5 * 1024 * 1024

_ID = r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}$"
NodeId = Annotated[str, Field(pattern=_ID, description="Stable node id, unique in the flow. Edges refer to it.")]
PortName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$", description="A port the node type declares.")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False, populate_by_name=True, allow_inf_nan=False)


class OnError(StrEnum):
    stop = "stop"  # the run fails
    continue_ = "continue"  # the node passes its input items on, each with an `error` field
    error_port = "error_port"  # the failed items leave by the extra `error` output port


class RunMode(StrEnum):
    parallel = "parallel"
    queued = "queued"
    skip = "skip"


class Position(Strict):
    x: float = 0
    y: float = 0


class NodeSettings(Strict):
    timeout: float | None = Field(None, gt=0, le=86400, description="Seconds before the node is stopped and fails.")
    retries: int = Field(0, ge=0, le=10, description="How many more times to try after a failure.")
    retry_backoff: float = Field(1.0, ge=0, le=3600, description="Seconds before the first retry; doubles each time.")
    on_error: OnError = Field(OnError.stop, description="What a failure does: stop the run, continue, or error port.")
    disabled: bool = Field(False, description="A disabled node passes its input items through unchanged.")
    notes: str = Field("", max_length=10_000)


class Node(Strict):
    id: NodeId
    type: str = Field(pattern=r"^[a-z][a-z0-9_.\-]*(/[a-z0-9_.\-]+)?$",
                      description="Node type id, e.g. `http.request`.")
    version: int = Field(1, ge=1, description="Node type version; old flows keep running on the old one.")
    name: str = Field("", max_length=200, description="Display name on the canvas; defaults to the type's title.")
    position: Position = Field(default_factory=Position)
    config: dict[str, Any] = Field(default_factory=dict)
    settings: NodeSettings = Field(default_factory=NodeSettings)
    pinned: list[dict[str, Any]] | None = Field(None, description="Test items pinned on a trigger for repeatable runs.")


class Edge(Strict):
    source: NodeId
    source_port: PortName = "main"
    target: NodeId
    target_port: PortName = "main"

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.source, self.source_port, self.target, self.target_port)


class FlowSettings(Strict):
    run_mode: RunMode = RunMode.parallel
    timezone: str = Field("UTC", description="IANA timezone for schedules and dates, e.g. `Europe/Berlin`.")
    error_flow: str | None = Field(None, description="Id of a flow to run when a run of this flow fails.")
    max_concurrency: int = Field(16, ge=1, le=1000, description="Nodes of one run that may work at the same time.")

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {value!r}; use an IANA name such as 'Europe/Berlin' or 'UTC'") from None
        return value


class Flow(Strict):
    format: int = Field(FORMAT, description="Flow file format number.")
    id: str = Field(default_factory=lambda: uuid.uuid4().hex[:12], pattern=_ID)
    name: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=10_000)
    nodes: list[Node] = Field(default_factory=list)
    edges: list[Edge] = Field(default_factory=list)
    settings: FlowSettings = Field(default_factory=FlowSettings)
    connectors: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Only in an exported file: the OpenAPI connectors the flow's nodes use "
        "(`document`, `source`, `server`), so the flow works where it is imported. Stored flows leave it out.")

    @field_validator("format")
    @classmethod
    def _known_format(cls, value: int) -> int:
        if value != FORMAT:
            raise ValueError(f"this Flowboard reads flow format {FORMAT}, the file says {value}")
        return value

    @model_validator(mode="after")
    def _unique_ids(self) -> Flow:
        seen: set[str] = set()
        for node in self.nodes:
            if node.id in seen:
                raise ValueError(f"two nodes share the id {node.id!r}; every node needs its own id")
            seen.add(node.id)
        return self

    def node(self, node_id: str) -> Node:
        for node in self.nodes:
            if node.id == node_id:
                return node
        raise KeyError(node_id)


def flow_schema() -> dict[str, Any]:
    schema = Flow.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Flowboard flow file"
    return schema


def parse_flow(data: str | bytes | dict[str, Any]) -> Flow:
    """Read a flow file strictly. Raises FlowInvalid listing every problem with its location.

    Text goes through the shared JSON reader (size, nesting, NaN and Infinity refused at their place); a dict handed
    over already parsed gets the same nesting and number checks."""
    try:
        if isinstance(data, str | bytes):
            data = read_json(data, max_bytes=MAX_FLOW_BYTES, what="the flow file")
        else:
            check_nesting(data, what="the flow")
    except JsonRefused as exc:
        raise FlowInvalid([Problem(exc.loc, exc.message)]) from None
    if not isinstance(data, dict):
        raise FlowInvalid([Problem("", "a flow file is a JSON object with `name`, `nodes` and `edges`")])
    try:
        return Flow.model_validate(data)
    except ValidationError as exc:
        raise FlowInvalid(problems_from_validation(exc, data)) from None


def dump_flow(flow: Flow) -> str:
    """Write a flow deterministically: sorted keys, two-space indent, defaults left out of settings."""
    data = flow.model_dump(mode="json", exclude_defaults=False)
    for node in data["nodes"]:
        node["settings"] = {k: v for k, v in node["settings"].items() if v != NodeSettings.model_fields[k].default}
        if node["pinned"] is None:
            del node["pinned"]
    if not data["connectors"]:
        del data["connectors"]
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def new_node_id(flow: Flow, base: str) -> str:
    """A readable node id that the flow does not use yet (`http_request`, `http_request_2`, …)."""
    stem = re.sub(r"[^a-z0-9_]+", "_", base.lower()).strip("_") or "node"
    taken = {n.id for n in flow.nodes}
    if stem not in taken:
        return stem
    i = 2
    while f"{stem}_{i}" in taken:
        i += 1
    return f"{stem}_{i}"

"""What the REST API reads and writes: pydantic models, kept apart from the store's tables and dataclasses.

As in SQLModel's `XBase` / `XRead` pattern, a `...Base` holds the fields a resource shows everywhere, and `...Read` adds
what only the detailed view carries (flow documents, items, steps). These models are the OpenAPI schemas at `/docs`,
and the responses are built through them, so the documentation cannot drift from what is sent.

Times are epoch seconds (UTC, float), like everywhere in Flowboard; durations are milliseconds.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, GetPydanticSchema

from ..engine import RunStatus, StepStatus
from ..model import Flow

Items = list[dict[str, Any]]

#: A flow file as JSON data, as `GET /flows/{id}/export` writes it: kept as it is (not re-dumped with every default),
#: documented by the flow file's own schema (`Flow`).
FlowDocument = Annotated[dict[str, Any], GetPydanticSchema(
    get_pydantic_json_schema=lambda _schema, handler: handler(Flow.__pydantic_core_schema__))]


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- errors -------------------------------------------------------------------------------------------------------


class ProblemOut(_Out):
    loc: str = Field(description="Where: `nodes[2].config.url`, `items[0]`, `limit`; empty for the whole request.")
    message: str = Field(description="What is wrong, in plain words.")
    node_id: str | None = Field(default=None, description="The node the problem is about, if any.")


class ErrorOut(_Out):
    """Every error answer of the API has this shape."""

    error: str = Field(description="What went wrong, in plain words.")
    problems: list[ProblemOut] = Field(default_factory=list, description="Each problem with its location (422).")


class ConflictOut(ErrorOut):
    current_version: int | None = Field(default=None, description="A save conflict: the flow's version now. Reload it.")


# -- flows --------------------------------------------------------------------------------------------------------


class FlowBase(_Out):
    id: str
    version: int = Field(description="The current version number; send it back when saving (`If-Match`).")
    active: bool = Field(description="Whether the flow's production triggers (webhooks, schedules, ...) are on.")


class FlowSummaryOut(FlowBase):
    name: str
    description: str
    updated: float
    last_run_status: RunStatus | None
    last_run_at: float | None


class FlowList(_Out):
    flows: list[FlowSummaryOut]


class FlowRead(FlowBase):
    flow: FlowDocument
    created: float
    updated: float


class FlowSaved(FlowBase):
    name: str


class FlowUpdate(_In):
    """The body of `PUT /flows/{id}` in its wrapped form (the bare flow document, with `If-Match`, works as well)."""

    flow: FlowDocument
    version: int | None = Field(default=None, ge=1, description="The version you loaded; a newer one stored gives 409.")


class VersionOut(_Out):
    version: int
    created: float
    note: str


class VersionList(_Out):
    flow_id: str
    versions: list[VersionOut] = Field(description="Newest first.")


class VersionRead(VersionOut):
    flow_id: str
    flow: FlowDocument


# -- runs ---------------------------------------------------------------------------------------------------------


class RunStart(_In):
    items: Items | None = Field(default=None, description="The trigger's input items (JSON objects). None or "
                                                          "empty: the trigger's own test items, or one empty item.")
    wait: bool = Field(default=True, description="true: answer with the result when the run ends. false: answer 202 "
                                                 "with the run id at once; the run goes on in the background and is "
                                                 "recorded.")
    trigger: str | None = Field(default=None, description="Id of the trigger node to start from (default: the manual "
                                                          "trigger, else the first trigger).")


class RunRetry(_In):
    wait: bool = Field(default=True, description="As for starting a run: wait for the result, or answer 202 at once.")


class RunAccepted(_Out):
    run_id: str
    status: RunStatus
    url: str = Field(description="Where to follow the run: `GET` it.")


class StepSummaryOut(_Out):
    status: StepStatus
    items: int = Field(description="How many items the node put out.")
    attempt: int
    error: dict[str, Any] | None = None


class RunResultOut(_Out):
    """A finished run, as `flowboard run` prints it. A failed run is a result too (200, `status: failed`)."""

    run_id: str
    flow_id: str
    status: RunStatus
    duration_ms: float
    error: dict[str, Any] | None
    output: Items = Field(description="The items of the last node that succeeded.")
    steps: dict[str, StepSummaryOut] = Field(description="Per node id.")


class RunBase(_Out):
    id: str
    flow_id: str
    flow_version: int | None
    status: RunStatus
    trigger: str | None = Field(description="The trigger node the run started from.")
    source: str | None = Field(description="What started it: api, manual, cli, webhook, schedule, ...")
    created: float
    started: float | None
    finished: float | None
    duration_ms: float | None
    error: dict[str, Any] | None = Field(description="Why it failed: `message`, `node_id`, and where known "
                                                     "`item_index` and `field`.")


class RunSummaryOut(RunBase):
    pass


class RunList(_Out):
    runs: list[RunSummaryOut] = Field(description="Newest first.")
    limit: int
    offset: int
    next_offset: int | None = Field(description="The offset of the next page; null on the last page.")


class StepRead(_Out):
    node_id: str
    status: StepStatus
    attempt: int = Field(description="1, or more when the node was retried (its retry setting).")
    started: float
    finished: float
    duration_ms: float
    items: int = Field(description="How many items the node put out.")
    inputs: dict[str, Items] = Field(description="Items that came in, per input port.")
    outputs: dict[str, Items] = Field(description="Items that went out, per output port.")
    error: dict[str, Any] | None


class RunRead(RunBase):
    input: Items = Field(description="The trigger's input items.")
    output: Items | None = Field(description="The run's result items, once it ended.")
    steps: list[StepRead] = Field(description="In the order they finished. Steps of a run that is still going show "
                                              "up as they are recorded (at the latest when it ends).")


# -- nodes --------------------------------------------------------------------------------------------------------


class NodeTypeOut(_Out):
    type: str
    version: int
    title: str
    category: str = Field(description="trigger, logic or integration")
    icon: str
    description: str
    doc: str
    inputs: list[str]
    outputs: list[str]
    side_effects: bool = Field(description="It changes something outside the run (so it is never repeated after a "
                                           "crash).")
    config_schema: dict[str, Any] = Field(description="JSON Schema of the node's config.")
    group: str = Field("", description="For an OpenAPI connector's operations: the API's name (they are listed "
                                       "together under it).")


class NodeList(_Out):
    nodes: list[NodeTypeOut]

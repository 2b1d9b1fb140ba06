"""Run and step state as data: an enum plus a record. `failed` (a node raised) is not `crashed` (the system died)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class RunStatus(StrEnum):
    queued = "queued"
    running = "running"
    waiting = "waiting"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"
    crashed = "crashed"

    @property
    def finished(self) -> bool:
        return self in _RUN_FINAL


_RUN_FINAL = frozenset({RunStatus.succeeded, RunStatus.failed, RunStatus.cancelled, RunStatus.crashed})


class StepStatus(StrEnum):
    running = "running"
    waiting = "waiting"
    succeeded = "succeeded"
    failed = "failed"
    skipped = "skipped"
    cancelled = "cancelled"


@dataclass(slots=True)
class Step:
    """One node's part in one run: what went in, what came out, how it ended."""

    run_id: str
    node_id: str
    status: StepStatus
    started: float
    finished: float
    attempt: int = 1
    inputs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    outputs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    error: dict[str, Any] | None = None

    @property
    def count(self) -> int:
        return sum(len(v) for v in self.outputs.values())


@dataclass(slots=True)
class RunResult:
    run_id: str
    flow_id: str
    status: RunStatus
    started: float
    finished: float
    output: list[dict[str, Any]]
    steps: dict[str, Step]
    error: dict[str, Any] | None = None

    def summary(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "flow_id": self.flow_id,
            "status": self.status.value,
            "duration_ms": round((self.finished - self.started) * 1000, 3),
            "error": self.error,
            "output": self.output,
            "steps": {
                node_id: {"status": s.status.value, "items": s.count, "attempt": s.attempt,
                          **({"error": s.error} if s.error else {})}
                for node_id, s in self.steps.items()
            },
        }


def derive_inputs(edges: list[tuple[str, str, str, str]], steps: dict[str, Step], run_input: list[dict[str, Any]],
                  triggers: set[str]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Each node's input items of a recorded run: the outputs of its upstream steps along the edges
    (source, source port, target, target port); a trigger's input is the run's input."""
    inputs: dict[str, dict[str, list[dict[str, Any]]]] = {nid: {} for nid in steps}
    for nid in triggers:
        if nid in inputs:
            inputs[nid]["main"] = run_input
    for source, source_port, target, target_port in edges:
        upstream = steps.get(source)
        if upstream is None or target not in inputs:
            continue
        inputs[target].setdefault(target_port, []).extend(upstream.outputs.get(source_port, []))
    return inputs

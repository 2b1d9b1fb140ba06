"""Run and step state as data: an enum plus a record. `failed` (a node raised) is not `crashed` (the system died)."""

from __future__ import annotations

from collections.abc import Callable
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

#: The run states a run may move to from each state; every write of a run's state is checked against it (as Prefect's
#: orchestration rules do), so a late or stale writer is refused instead of silently winning: nothing turns a
#: cancelled run into a succeeded one. Only a retry (`Store.reopen_run`) leaves a final state, and never `succeeded`.
#: Writing a state onto itself is allowed (a running run's steps, a waiting run's new deadline).
_GOING = frozenset({RunStatus.queued, RunStatus.running, RunStatus.waiting})
RUN_TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.queued: frozenset(RunStatus),
    RunStatus.running: frozenset(RunStatus) - {RunStatus.queued},
    RunStatus.waiting: frozenset(RunStatus) - {RunStatus.queued},
    RunStatus.succeeded: frozenset(),
    RunStatus.failed: frozenset({RunStatus.queued, RunStatus.running}),
    RunStatus.cancelled: frozenset({RunStatus.queued, RunStatus.running}),
    RunStatus.crashed: frozenset({RunStatus.queued, RunStatus.running}),
}
#: States a run is still going in: the engine (and its recorder) only ever continue a run from one of these.
GOING = tuple(sorted(s.value for s in _GOING))


def transition_allowed(old: RunStatus | str, new: RunStatus | str) -> bool:
    return RunStatus(new) in RUN_TRANSITIONS[RunStatus(old)]


def sources_of(new: RunStatus | str) -> tuple[str, ...]:
    """The states from which a run may move to `new`, as stored values (for a guarded `UPDATE ... WHERE status IN`)."""
    new = RunStatus(new)
    return tuple(sorted(old.value for old, targets in RUN_TRANSITIONS.items() if new in targets))


class RunLost(Exception):
    """This process does not own the run any more: its lease expired (the process was paused, or its database
    unreachable, for longer than the lease) and another process took the run over, or it ended meanwhile. The owner
    stops the run at once and writes nothing more about it."""

    def __init__(self, run_id: str):
        self.run_id = run_id
        super().__init__(f"run {run_id} is no longer run by this process: another process took it over after this "
                         "one stopped renewing its lease, or it ended meanwhile")


class StepStatus(StrEnum):
    running = "running"
    waiting = "waiting"
    succeeded = "succeeded"
    failed = "failed"
    skipped = "skipped"
    cancelled = "cancelled"


class Later:
    """`Step.lineage` not worked out yet: `work(inputs, outputs, None)` does it when it is first read
    (`engine.lineage.LATER`; this module does not import that one, which imports this one)."""

    __slots__ = ("work",)

    def __init__(self, work: Callable[[Any, Any, None], dict[str, Any] | None]):
        self.work = work


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
    logs: list[str] = field(default_factory=list)  # lines the node printed (the Code node's print())
    #: Which input item each output item came from, per output port (`lineage`); a Later: worked out when first read.
    _lineage: Any = field(default=None, compare=False, repr=False)
    #: A `waiting` step: {"resume_at": epoch seconds or None, "data": {...}} (the recorder writes its wait row with
    #: it); the step that ends a wait: {"done": True} (the recorder closes the wait row). None otherwise.
    wait: dict[str, Any] | None = None
    #: {output port: (node id, port)}: that output holds the very items of an earlier step's port (a node that passed
    #: its input on unchanged). Set by the engine for the recorder, which then writes a reference, not the items
    #: again; `Store.get_steps` puts them back.
    same_as: dict[str, tuple[str, str]] | None = field(default=None, compare=False, repr=False)

    @property
    def count(self) -> int:
        return sum(len(v) for v in self.outputs.values())

    @property
    def lineage(self) -> dict[str, Any] | None:
        """Which input item each output item came from, per output port (engine/lineage.py); None when not known.
        The engine leaves it to be worked out when first read (by the recorder, `nodes['X'].item`, the data view)
        for a step whose node said nothing with `ctx.paired`: its inputs and outputs are frozen, so the items the
        node passed on are still the very input items, and that is all it needs."""
        lineage = self._lineage
        if lineage.__class__ is Later:
            lineage = self._lineage = lineage.work(self.inputs, self.outputs, None)
        return lineage

    @lineage.setter
    def lineage(self, value: dict[str, Any] | None) -> None:
        self._lineage = value


@dataclass(slots=True)
class Waiting:
    """A recorded wait of a node of a run that is resumed (`resumed`, with `payload`) or still waits."""

    resume_at: float | None
    data: dict[str, Any]
    resumed: bool = False
    payload: Any = None
    resumed_at: float | None = None
    who: str | None = None  # who resumed it, in words


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

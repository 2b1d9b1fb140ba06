"""The engine: validate and compile a flow (plan), run it (runner), report progress (events), as data (states).

```
 Flow ──build_plan──▶ Plan (once per flow version)
                        │
 trigger items ──▶ Engine.run ──▶ ready-set loop ──▶ node.run(ctx, config, inputs)
                        │              │
                        │              ├─▶ Recorder.steps_finished   (store: SQLite / PostgreSQL)
                        │              └─▶ EventBus.publish          (editor, runs page, API streams)
                        ▼
                    RunResult
```
"""

from .events import Event, EventBus, Progress
from .plan import Plan, PlannedNode, build_plan
from .runner import Engine, Lease, Recorder, RunInfo
from .states import (
    GOING,
    RUN_TRANSITIONS,
    RunLost,
    RunResult,
    RunStatus,
    Step,
    StepStatus,
    Waiting,
    derive_inputs,
    sources_of,
    transition_allowed,
)

__all__ = ["GOING", "RUN_TRANSITIONS", "Engine", "Event", "EventBus", "Lease", "Plan", "PlannedNode", "Progress",
           "Recorder", "RunInfo", "RunLost", "RunResult", "RunStatus", "Step", "StepStatus", "Waiting", "build_plan",
           "derive_inputs", "sources_of", "transition_allowed"]

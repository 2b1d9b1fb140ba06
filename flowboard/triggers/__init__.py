"""Production triggers: which active flow answers which trigger, and the trigger kinds.

`base` holds what every kind shares (activations, claims, the run gate, the `Launcher` interface a kind starts its
runs through); each kind is one module: `webhook`, `schedule`, `form`, `table` (table change), `listen` (brokers:
RabbitMQ, MQTT, Redis, NATS), `error` (error flows, a subscriber to run-finished events). A kind depends on the
launcher and on the one store or service it claims its events in, never on the whole app.
"""

from .base import (
    Activation,
    ActivationConflict,
    Activations,
    Claim,
    Launcher,
    RunGate,
    RunSkipped,
    TriggerKind,
    new_run_id,
    node_index,
)
from .error import ErrorFlows
from .form import FormEndpoint, FormTriggers
from .listen import ConnectionState, ListenerTriggers
from .schedule import ScheduleTriggers
from .table import TableTriggers
from .webhook import WebhookEndpoint, WebhookTriggers

__all__ = [
    "Activation",
    "ActivationConflict",
    "Activations",
    "Claim",
    "ConnectionState",
    "ErrorFlows",
    "FormEndpoint",
    "FormTriggers",
    "Launcher",
    "ListenerTriggers",
    "RunGate",
    "RunSkipped",
    "ScheduleTriggers",
    "TableTriggers",
    "TriggerKind",
    "WebhookEndpoint",
    "WebhookTriggers",
    "new_run_id",
    "node_index",
]

"""The form trigger kind: which active flow serves which public form page (`/form/<path>`).

The pages themselves (HTML, reading and checking the answers) are `flowboard/forms_public.py`; they look the form up
here and start its run through the launcher.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..engine import Plan
from ..errors import Problem
from .base import Activation, Claim, TriggerKind, node_index

FORM = "trigger.form"


@dataclass(slots=True, eq=False)
class FormEndpoint:
    flow_id: str
    node_id: str
    config: Any  # nodes.form.FormConfig, validated at activation
    activation: Activation


class FormTriggers(TriggerKind):
    """The form routing table: `routes[path]` for active flows."""

    name = "form"
    node_types = frozenset({FORM})

    def __init__(self) -> None:
        self.routes: dict[str, FormEndpoint] = {}

    def problems(self, plan: Plan) -> list[Problem]:
        return self.expression_problems(plan, "a form's")

    def claims(self, plan: Plan) -> list[Claim]:
        index = node_index(plan)
        out = []
        for nid in self.trigger_nodes(plan):
            config: Any = plan.nodes[nid].static_config
            if config is not None:
                out.append(Claim(("form", config.path), f"the form page /form/{config.path}", nid,
                                 f"nodes[{index[nid]}].config.path"))
        return out

    def add(self, activation: Activation) -> None:
        plan = activation.plan
        for nid in self.trigger_nodes(plan):
            config: Any = plan.nodes[nid].static_config
            if config is not None:
                self.routes[config.path] = FormEndpoint(activation.flow_id, nid, config, activation)

    def remove(self, flow_id: str) -> None:
        for path in [p for p, ep in self.routes.items() if ep.flow_id == flow_id]:
            del self.routes[path]

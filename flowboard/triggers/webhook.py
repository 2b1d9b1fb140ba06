"""The webhook trigger kind: the routing table of active flows' webhook URLs and the editor's test listeners.

The routes themselves (reading a call, answering it) are `flowboard/api/webhooks.py`; they look an endpoint up here
and start its run through the launcher.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from ..engine import Plan, RunResult
from ..errors import Problem
from .base import Activation, ActivationConflict, Claim, TriggerKind, node_index

WEBHOOK = "trigger.webhook"
RESPOND = "webhook.respond"
ALWAYS_HIDDEN = frozenset({"authorization", "proxy-authorization"})  # never put in an item, recorded or logged


@dataclass(slots=True, eq=False)
class WebhookEndpoint:
    """One webhook trigger node of one flow, ready to answer: everything the route needs, worked out once."""

    flow_id: str
    node_id: str
    path: str
    config: Any  # the node's WebhookConfig (validated once, at plan time)
    plan: Plan
    version: int
    respond_nodes: tuple[str, ...]  # webhook.respond nodes, in the flow's order
    hidden: frozenset[str]  # lower-case header names never put in the item
    activation: Activation | None = None  # None for a test listener
    listener: asyncio.Future[RunResult] | None = None  # set for a test listener
    keep: frozenset[str] | None = None  # lower-case header names put in the item; None: all but `hidden`


class WebhookTriggers(TriggerKind):
    """The webhook routing table: `routes[path][method]` for active flows, `tests[path][method]` for test listeners
    (one call each, then they are gone)."""

    name = "webhook"
    node_types = frozenset({WEBHOOK})

    def __init__(self) -> None:
        self.routes: dict[str, dict[str, WebhookEndpoint]] = {}
        self.tests: dict[str, dict[str, WebhookEndpoint]] = {}

    def problems(self, plan: Plan) -> list[Problem]:
        return self.expression_problems(plan, "a webhook's")

    def claims(self, plan: Plan) -> list[Claim]:
        index = node_index(plan)
        out = []
        for nid in self.trigger_nodes(plan):
            config: Any = plan.nodes[nid].static_config
            if config is None:
                continue
            for method in config.methods:
                out.append(Claim(("webhook", method, config.path), f"{method} /webhook/{config.path}", nid,
                                 f"nodes[{index[nid]}].config.path"))
        return out

    def endpoints(self, plan: Plan, version: int, flow_id: str) -> list[WebhookEndpoint]:
        respond = tuple(nid for nid in plan.order if plan.nodes[nid].cls.type == RESPOND)
        out = []
        for nid in self.trigger_nodes(plan):
            config: Any = plan.nodes[nid].static_config
            if config is None:
                continue
            auth = config.auth
            hidden = set(ALWAYS_HIDDEN)
            if auth.type == "header":
                hidden.add(auth.name.lower())
            elif auth.type == "hmac":
                hidden.add(auth.header.lower())
            names = getattr(config, "headers", None)
            keep = None if names is None or "*" in names else frozenset(names) - hidden
            out.append(WebhookEndpoint(flow_id, nid, config.path, config, plan, version, respond, frozenset(hidden),
                                       keep=keep))
        return out

    def add(self, activation: Activation) -> None:
        for ep in self.endpoints(activation.plan, activation.version, activation.flow_id):
            ep.activation = activation
            methods = self.routes.setdefault(ep.path, {})
            for method in ep.config.methods:
                methods[method] = ep

    def remove(self, flow_id: str) -> None:
        _drop(self.routes, flow_id)

    # -- test calls (the editor's "listen for a test call") ----------------------------------------------------------

    def listen(self, flow_id: str, plan: Plan, version: int, future: asyncio.Future[RunResult]) -> list[str]:
        """Answer the flow's webhook test URLs once, resolving `future` with the run. Returns the paths."""
        self.stop_listening(flow_id)
        endpoints = self.endpoints(plan, version, flow_id)
        if not endpoints:
            raise ActivationConflict([Problem("nodes", "the flow has no webhook trigger to listen on")])
        index = node_index(plan)
        problems = [Problem(f"nodes[{index[ep.node_id]}].config.path", f"/webhook-test/{ep.path} is being listened "
                            f"on by the editor of flow {other.flow_id!r}; stop listening there first", ep.node_id)
                    for ep in endpoints for method in ep.config.methods
                    if (other := self.tests.get(ep.path, {}).get(method)) is not None]
        if problems:
            raise ActivationConflict(problems)
        for ep in endpoints:
            ep.listener = future
            methods = self.tests.setdefault(ep.path, {})
            for method in ep.config.methods:
                methods[method] = ep
        future.add_done_callback(lambda _: self.stop_listening(flow_id, future))
        return [ep.path for ep in endpoints]

    def stop_listening(self, flow_id: str, future: asyncio.Future[RunResult] | None = None) -> None:
        for path, methods in list(self.tests.items()):
            for method, ep in list(methods.items()):
                if ep.flow_id == flow_id and (future is None or ep.listener is future):
                    del methods[method]
                    if future is None and ep.listener is not None and not ep.listener.done():
                        ep.listener.cancel()
            if not methods:
                del self.tests[path]

    def close(self) -> None:
        for flow_id in {ep.flow_id for methods in self.tests.values() for ep in methods.values()}:
            self.stop_listening(flow_id)


def _drop(table: dict[str, dict[str, WebhookEndpoint]], flow_id: str) -> None:
    for path, methods in list(table.items()):
        for method in [m for m, ep in methods.items() if ep.flow_id == flow_id]:
            del methods[method]
        if not methods:
            del table[path]

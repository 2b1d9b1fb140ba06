"""Services: what the UI, the API and the CLI call. They join the engine and the store, which stay ignorant of each
other.

One `Flowboard` per process. Plans are compiled once per flow version and cached, so a run never re-validates.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import credential_types
from .approval_links import Links
from .approvals import ApprovalService
from .auth import Accounts
from .blobs import FILE_GRACE, FILE_KEY, Blobs, BlobStore, files_in
from .calls import CallChecks, FlowCalls
from .connectors import Connectors
from .engine import Engine, Event, EventBus, Plan, RunResult, RunStatus, Step, StepStatus, Waiting, build_plan
from .errors import FlowboardError, FlowInvalid, Problem
from .model import Flow, OnError, RunMode, dump_flow, parse_flow
from .registry import Registry, default_registry
from .runs import Launcher
from .sdk import Context, Items, Services
from .store import (
    CREDENTIAL_CACHE,
    Lease,
    NotFound,
    RunRecord,
    SqlRecorder,
    Store,
    WaitGone,
    database_url,
    make_engine,
)
from .store.approvals import ApprovalStore
from .store.blobs import DatabaseBlobs
from .store.datatables import DataTables
from .store.notify import Notices
from .store.secrets import raw_key
from .tables import TableService
from .triggers import (
    Activations,
    ConnectionState,
    ErrorFlows,
    FormTriggers,
    ListenerTriggers,
    ScheduleTriggers,
    TableTriggers,
    WebhookTriggers,
)
from .waiting import LINK_PATH, Sleeper, resume_token, token_valid

if TYPE_CHECKING:
    from .oauth import OAuth2
    from .runs.queue import ProcrastinateDispatcher

log = logging.getLogger(__name__)


class Flowboard:
    """The application: registry, store, engine and event bus, wired once."""

    def __init__(self, data_dir: Path | str | None = None, database: str | None = None,
                 registry: Registry | None = None, record: bool = True, dispatch: str | None = None):
        """`dispatch`: where triggered runs run: "process" (this process, the default) or "procrastinate" (queued for
        `flowboard worker` processes, PostgreSQL only); env `FLOWBOARD_DISPATCH`."""
        self.data_dir = Path(data_dir) if data_dir else None
        #: The node types: the installed ones plus this Flowboard's connectors (on its own copy of the registry).
        self.registry = registry if registry is not None else default_registry().copy()
        self.store = Store(make_engine(database or database_url(self.data_dir)), data_dir=self.data_dir)
        self.approvals = ApprovalService(ApprovalStore(self.store.engine),  # approval tasks, decisions, deadlines
                                         links=Links(lambda: raw_key(self.store.data_dir)))
        self.accounts = Accounts(self.store)  # users, sessions, who an API key acts for
        self.bus = EventBus()
        self.tables = TableService(DataTables(self.store.engine), run_source=self._run_source)
        self.calls = FlowCalls(self)  # the Call flow node's child runs
        files_dir = os.environ.get("FLOWBOARD_FILES_DIR")
        # files in items (flowboard/blobs.py): in the database on PostgreSQL (shared by servers and workers), else in
        # the data folder
        self.blobs: Blobs = DatabaseBlobs(self.store.engine) if self.store.engine.dialect.name == "postgresql" \
            else BlobStore(lambda: self.store.data_dir() / "blobs")
        self.services = Services(credentials=self.credential_for_run, tables=self.tables.for_run,
                                approvals=self.approvals, flows=self.calls.for_run, blobs=self.blobs,
                                files_dir=(lambda: Path(files_dir)) if files_dir
                                else (lambda: self.store.data_dir() / "files"))
        self.recorder = SqlRecorder(self.store) if record else None
        self.engine = Engine(self.services, self.recorder, self.bus)
        if self.recorder is not None:  # runs this process owns are renewed in the background while they go
            self.engine.lease = Lease(self.store, self.store.owner, lambda: self.engine.active_runs,
                                      self.engine.abandon)
        self.owner = self.store.owner
        self.launcher = Launcher(self.store, self.engine, self.recorder, self.plan, self.owner)
        self.queue: ProcrastinateDispatcher | None = None  # set when runs go to workers
        dispatch = dispatch or os.environ.get("FLOWBOARD_DISPATCH") or "process"
        if dispatch == "procrastinate":
            self._use_workers()
        elif dispatch != "process":
            raise FlowboardError(f"FLOWBOARD_DISPATCH is {dispatch!r}; use process (runs go in this process) or "
                                 "procrastinate (runs go to `flowboard worker` processes on PostgreSQL)")
        self.listeners = ListenerTriggers(self.launcher)  # brokers: RabbitMQ, MQTT, Redis, NATS
        self.triggers = Activations([WebhookTriggers(), FormTriggers(), ScheduleTriggers(self.launcher, self.store),
                                     TableTriggers(self.launcher, self.tables), CallChecks(self), self.listeners])
        self.error_flows = ErrorFlows(self.launcher, self.store, self.plan)
        #: Run-finished subscribers: each is called with (plan, trigger node id, result) for every run this process
        #: concludes; must not raise or block.
        self.finished: list[Callable[[Plan, str, RunResult], None]] = [self.error_flows.finished]
        self.engine.on_finished = self._run_finished
        #: Where people reach this server (resume links in emails): `FLOWBOARD_PUBLIC_URL`, else the local address.
        self.public_url = (os.environ.get("FLOWBOARD_PUBLIC_URL") or "http://127.0.0.1:8080").rstrip("/")
        self.sleeper = Sleeper(self)
        self._link_key: bytes | None = None
        if self.recorder is not None:
            self.engine.resume_url = self.resume_url
            self.approvals.resume = self.resume_waiting  # a settled approval resumes its parked run
            self.approvals.run_going = self._run_going
            self.approvals.notifier = self._notify_approvers
        self.approvals.unknown = self.unknown_people
        self.approvals.people = self.people_of
        self._plans: dict[tuple[str, int], Plan] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._triggers_started = False
        #: The other processes on this PostgreSQL database (servers, workers): activation changes and cancels.
        self.notices = Notices(self.store.engine, self.owner)
        self.notices.handlers.update(activation=self._heard_activation, cancel=self._heard_cancel,
                                     runs=self._heard_runs)
        self.connectors = Connectors(self)  # OpenAPI connectors: their node types join the registry
        self.connectors.load_all()

    @functools.cached_property
    def oauth(self) -> OAuth2:
        """OAuth2 credentials' tokens, made when first needed (it imports httpx and authlib, which a webhook's answer
        does not need: start-up)."""
        from .oauth import OAuth2

        return OAuth2(self.store, lambda: self.public_url)

    def _use_workers(self) -> None:
        """Triggered runs are recorded as queued with no owner and handed to workers through Procrastinate."""
        from .runs.queue import ProcrastinateDispatcher

        if self.store.engine.dialect.name != "postgresql" or self.recorder is None:
            raise FlowboardError("runs can go to workers only with PostgreSQL and recording on: set "
                                 "FLOWBOARD_DATABASE_URL to a postgresql:// URL, or leave FLOWBOARD_DISPATCH unset")
        self.queue = ProcrastinateDispatcher(self.store.engine.url.render_as_string(hide_password=False), self.store,
                                             self.launcher.spawn)
        self.launcher.dispatcher = self.queue
        self.launcher.owner = None  # the worker that takes a run owns it
        self.launcher.shared = True  # run mode skip is decided in the store

    async def _notify_approvers(self, tasks: list[Any], reminder: bool = False) -> None:
        """Approvers of tasks made after their node ran, or reminded of open ones, are told the way their Approval
        node says (its type does it, with a context of the run, so credentials and the HTTP client are the run's)."""
        for task in tasks:
            cls = self.registry.get("approval")
            notify = getattr(cls, "notify_tasks", None)
            if notify is None:
                return
            ctx = Context(run_id=task.run_id, flow_id=task.flow_id, node_id=task.node_id, node_name=task.node_id,
                          attempt=1, services=self.services, config_for=lambda item: None, cancelled=asyncio.Event())
            await notify(ctx, [task], reminder=reminder)

    # -- credentials --------------------------------------------------------------------------------------------------

    async def credential_for_run(self, name: str) -> dict[str, Any] | None:
        """What a node sees of a credential: its fields, `type`, what the type derives (a database URL), and for
        OAuth2 types a current `access_token` (fetched or renewed here). None when there is no such credential.
        Read at most every `CREDENTIAL_CACHE` seconds, and never on the event loop (a read goes to a thread)."""
        found = self.store.cached_credential(name, CREDENTIAL_CACHE)
        if found is None:
            found = await asyncio.to_thread(self.store.credential, name, CREDENTIAL_CACHE)
        if found is None:
            return None
        type_, data = found
        declaration = credential_types.get(type_)
        if declaration is not None and declaration.oauth2:
            data = await self.oauth.current(name, type_, data)
        return credential_types.for_nodes(type_, data)

    async def test_credential(self, name: str) -> str:
        """"Test connection": a sentence saying what worked. Raises ValueError saying what did not (or NotFound)."""
        found = self.store.credential(name)
        if found is None:
            raise NotFound(f"there is no credential {name!r}")
        type_, data = found
        declaration = credential_types.get(type_)
        if declaration is not None and declaration.oauth2:
            return await self.oauth.test(name, type_, data)
        if declaration is None or declaration.test is None:
            raise ValueError(f"a credential of type {type_} cannot be tested: use it in a flow and run it")
        return await declaration.test(credential_types.for_nodes(type_, data))

    def unknown_people(self, names: Iterable[str]) -> str | None:
        """Why a task cannot be handed to these people or roles: a user or a role that does not exist, in words.
        None when all exist (or nobody signs in here, so names are not users yet)."""
        from .auth import Role

        if not self.accounts.has_users():
            return None
        users = {u.name for u in self.accounts.list_users()}
        for name in names:
            text = name.strip()
            if text.lower().startswith("role:"):
                if text[5:].strip().lower() not in {r.value for r in Role}:
                    return (f"there is no role {text[5:].strip()!r}; the roles are "
                            f"{', '.join('role:' + r.value for r in Role)}")
            elif text.lower().removeprefix("user:").strip() not in users:
                return f"there is no user {text!r}: write the user name someone signs in with"
        return None

    def people_of(self, assignee: str) -> list[tuple[str, str | None]]:
        """The people an approval assignee stands for, each (recipient, email from the Users page or None): a user
        is themselves, `role:x` everyone holding the role (nobody when the role is unknown). Without accounts, every
        assignee stands for itself."""
        from .auth import AccountError, Role

        text = assignee.strip()
        if not self.accounts.has_users():
            return [(text, None)]
        if text.lower().startswith("role:"):
            try:
                role = Role(text[5:].strip().lower())
            except ValueError:
                return []
            return [(f"user:{u.name}", u.email or None) for u in self.accounts.users_with_role(role)]
        try:
            user = self.accounts.get_user(text[5:] if text.lower().startswith("user:") else text)
        except AccountError:
            return [(text, None)]
        return [(text, user.email or None)]

    def _run_going(self, run_id: str) -> bool:
        """Is the run still going (queued, running or waiting)? Approvals refuse decisions for runs that ended."""
        try:
            return not self.store.get_run(run_id).status.finished
        except NotFound:
            return False

    def _run_source(self, run_id: str) -> tuple[str | None, Items]:
        record = self.store.get_run(run_id)
        return record.source, record.input or []

    # -- flows ------------------------------------------------------------------------------------------------------

    def check(self, flow: Flow) -> list[Problem]:
        """Every problem that would stop the flow from running; empty when it can run."""
        try:
            build_plan(flow, self.registry)
        except FlowInvalid as exc:
            return exc.problems
        return []

    def parse(self, text: str | bytes | dict[str, Any]) -> Flow:
        """Read a flow file and check it fully (types, ports, config, expressions, graph). Raises FlowInvalid."""
        flow = parse_flow(text)
        build_plan(flow, self.connectors.registry_for(flow))
        return flow

    def import_flow(self, text: str | bytes | dict[str, Any], *, new_id: bool = False) -> tuple[Flow, int]:
        """Import a flow file. Nothing is written unless the whole file is valid. An id already taken gets a new one,
        and a name already taken gets "(copy)", so the list never shows two flows that look the same. The OpenAPI
        connectors an exported file carries are installed when this Flowboard has none of that name (an existing
        one is kept as it is); a failed import takes them back."""
        flow = parse_flow(text)
        installed = self.connectors.install_from(flow) if flow.connectors else []
        differing = self.connectors.differing(flow) if flow.connectors else []
        try:
            flow = flow.model_copy(update={"connectors": {}})
            try:
                build_plan(flow, self.registry)
            except FlowInvalid as exc:
                if not differing:
                    raise
                raise FlowInvalid([*exc.problems, *(Problem(f"connectors.{name}", (  # why the nodes may not fit
                    f"the file carries another version of the connector {name!r} than this Flowboard has; the flow's "
                    f"nodes were checked against this Flowboard's. Re-import {name!r} on the Connectors page if the "
                    "flow needs the file's version")) for name in differing)]) from None
            if new_id or self.store.flow_exists(flow.id):
                flow = flow.model_copy(update={"id": uuid.uuid4().hex[:12]})
            flow = flow.model_copy(update={"name": self.free_name(flow.name)})
            return flow, self.store.save_flow(flow, expected_version=None, note="imported")
        except BaseException:
            self.connectors.take_back(installed)
            raise

    def free_name(self, name: str) -> str:
        """`name`, or `name (copy)`, `name (copy 2)`… whichever no stored flow has."""
        taken = {f.name for f in self.store.list_flows()}
        candidate, n = name, 1
        while candidate in taken:
            candidate = f"{name} (copy)" if n == 1 else f"{name} (copy {n})"
            n += 1
        return candidate[:200]

    def export_flow(self, flow_id: str) -> str:
        """The flow file to share: the flow, with the documents of the OpenAPI connectors its nodes use (never a
        credential: nodes name theirs, and the person importing adds their own)."""
        return self.export_text(self.store.get_flow(flow_id).flow)

    def export_text(self, flow: Flow) -> str:
        """A flow (stored or on the canvas) as the file to share, with the connectors its nodes use."""
        connectors = self.connectors.for_export(flow)
        return dump_flow(flow.model_copy(update={"connectors": connectors}) if connectors else flow)

    def forget_plans(self) -> None:
        """Node types changed (a connector was imported or removed): plans are compiled again when next needed, and
        active flows that use a connector serve their newest version with the new node types."""
        self._plans.clear()
        for flow_id in list(self.triggers.active):
            try:
                flow = self.store.get_flow(flow_id).flow
                if any(n.type.startswith("api.") for n in flow.nodes):
                    self.activate(flow_id)
            except Exception as exc:
                log.warning("flow %s stays active with its previous node types: %s", flow_id, exc)

    def save_flow(self, flow: Flow, expected_version: int | None, note: str = "") -> int:
        version = self.store.save_flow(flow, expected_version=expected_version, note=note)
        if flow.id in self.triggers.active:  # an active flow answers with its newest valid version
            try:
                self.activate(flow.id)
            except FlowInvalid as exc:
                log.warning("flow %s stays active with its previous version: %s", flow.id, exc)
        return version

    def delete_flow(self, flow_id: str) -> None:
        """Delete a flow with its versions, runs and steps. An active flow's triggers are switched off first, and its
        compiled plans are forgotten (a new flow may take the same id and start again at version 1)."""
        if flow_id in self.triggers.active:
            self.triggers.deactivate(flow_id)
        self.store.delete_flow(flow_id)
        for key in [key for key in self._plans if key[0] == flow_id]:
            del self._plans[key]
        self.notices.send("activation", flow_id=flow_id)

    def find_flow(self, key: str) -> str:
        """A stored flow's id from its id or its exact name."""
        if self.store.flow_exists(key):
            return key
        matches = [f.id for f in self.store.list_flows() if f.name == key]
        if len(matches) == 1:
            return matches[0]
        from .store import NotFound

        raise NotFound(f"no stored flow has the id or name {key!r}" if not matches
                       else f"{len(matches)} flows are called {key!r}; use the id")

    def plan(self, flow_id: str, version: int | None = None) -> Plan:
        if version is None:
            stored = self.store.get_flow(flow_id)
            key = (flow_id, stored.version)
            if key not in self._plans:
                self._plans[key] = build_plan(stored.flow, self.registry)
            return self._plans[key]
        key = (flow_id, version)
        if key not in self._plans:
            self._plans[key] = build_plan(self.store.get_version(flow_id, version), self.registry)
        return self._plans[key]

    # -- activation (production triggers) ---------------------------------------------------------------------------

    def activate(self, flow_id: str) -> None:
        """Switch the flow's production triggers on (its newest version). Raises FlowInvalid with every problem,
        ActivationConflict (a FlowInvalid) when another active flow holds one of its webhook routes."""
        self.start_triggers()
        stored = self.store.get_flow(flow_id)
        self.triggers.activate(flow_id, stored.flow.name, stored.version, self.plan(flow_id, stored.version))
        if not stored.active:
            self.store.set_active(flow_id, True)
        self.notices.send("activation", flow_id=flow_id)

    def deactivate(self, flow_id: str) -> None:
        """No new runs from the flow's production triggers; runs already going finish."""
        self.store.set_active(flow_id, False)
        self.triggers.deactivate(flow_id)
        self.notices.send("activation", flow_id=flow_id)

    async def _heard_activation(self, message: dict[str, Any]) -> None:
        """Another process activated, changed, deactivated or deleted a flow: serve what the store says now."""
        flow_id = str(message.get("flow_id"))
        if not self._triggers_started:  # a worker, or a command: it serves no triggers
            return

        def load() -> tuple[Any, Plan] | None:
            try:
                stored = self.store.get_flow(flow_id)
            except NotFound:
                return None
            return (stored, self.plan(flow_id, stored.version)) if stored.active else None

        try:
            loaded = await asyncio.to_thread(load)
        except Exception as exc:
            log.error("flow %s changed in another process and cannot be served here: %s", flow_id, exc)
            return
        if loaded is None:
            self.triggers.deactivate(flow_id)
            return
        stored, plan = loaded
        active = self.triggers.active.get(flow_id)
        if active is not None and active.version == stored.version:
            return
        try:
            self.triggers.activate(flow_id, stored.flow.name, stored.version, plan)
        except Exception as exc:
            log.error("flow %s was activated in another process but cannot be served here: %s", flow_id, exc)

    def _heard_runs(self, message: dict[str, Any]) -> None:
        """Runs a worker started or concluded: a caller waiting here gets its answer, and the views here (the runs
        page) hear of them."""
        for entry in message.get("runs") or []:
            if isinstance(entry, list) and len(entry) == 6:  # a node's event: the editor and the runs page show it
                if self.bus.active and entry[4] in NODE_EVENTS:
                    count = entry[5] if isinstance(entry[5], int) else None
                    self.bus.publish_safely(Event("node." + entry[4], str(entry[0]), str(entry[1]), str(entry[3]),
                                                  str(entry[2]) or None, count))
                continue
            if not (isinstance(entry, list) and len(entry) == 3):
                continue
            run_id, flow_id, status = (str(x) for x in entry)
            started = status == RunStatus.running.value
            if self.queue is not None and not started:
                self.queue.ended(run_id)
            if self.bus.active:
                self.bus.publish_safely(Event("run.started" if started else "run.finished", run_id, flow_id,
                                              status=status))

    def _heard_cancel(self, message: dict[str, Any]) -> None:
        self.engine.cancel(str(message.get("run_id")))

    def start_notices(self) -> None:
        """Hear the other processes on this database from now on (servers and workers call it as they start)."""
        self.notices.start()

    def start_triggers(self) -> None:
        """Serve the triggers of every flow stored as active (once; at server start)."""
        if self._triggers_started:
            return
        self._triggers_started = True
        with contextlib.suppress(RuntimeError):  # no event loop (a sync caller): deadlines wait for the server
            self.approvals.start()
        for summary in self.store.list_flows():
            if summary.active:
                try:
                    self.triggers.activate(summary.id, summary.name, summary.version, self.plan(summary.id))
                except Exception as exc:
                    log.error("active flow %s (%s) cannot be served: %s", summary.id, summary.name, exc)

    def connection_states(self, flow_id: str) -> list[ConnectionState]:
        """The connections the active flow's listening triggers (brokers) hold, and how each is doing."""
        return self.listeners.states(flow_id)

    def listen_test(self, flow_id: str, timeout: float = 120.0) -> asyncio.Future[RunResult]:
        """Answer one call to the flow's `/webhook-test/<path>` URLs (its newest saved version, active or not). The
        future resolves with that run's result; cancel it to stop listening. Gives up after `timeout` seconds."""
        stored = self.store.get_flow(flow_id)
        future: asyncio.Future[RunResult] = asyncio.get_running_loop().create_future()
        self.triggers.kind(WebhookTriggers).listen(flow_id, self.plan(flow_id, stored.version), stored.version,
                                                   future)
        handle = asyncio.get_running_loop().call_later(timeout, future.cancel)
        future.add_done_callback(lambda _: handle.cancel())
        return future

    # -- runs -------------------------------------------------------------------------------------------------------

    def sweep_files(self, grace: float = FILE_GRACE) -> int:
        """Delete the kept files that nothing names any more (their runs were deleted), if older than `grace`
        seconds: a file a node just made is not yet in a recorded step. Returns how many were deleted."""
        in_use = self.store.file_ids_in_use()
        deleted = 0
        for file_id in self.blobs.all() - in_use:
            if self.blobs.age(file_id) >= grace:
                self.blobs.delete(file_id, older_than=grace)  # unless made again since
                deleted += 1
        if deleted:
            log.info("deleted %d kept file(s) that no run or flow names any more", deleted)
        return deleted

    def clean_up(self) -> int:
        """Delete the runs the retention settings no longer keep, then the files nothing names any more (a deleted
        run's files were kept longer ago than the sweep's grace, unless a newer run made them again). Returns how many
        runs were deleted."""
        deleted = self.store.apply_retention()
        self.sweep_files()
        return deleted

    async def sweep_files_forever(self, every: float = FILE_GRACE) -> None:
        """The sweep of every server and worker (`flowboard worker`): once at start, then every `every` seconds.
        Several processes sweeping one database is safe: deleting a file twice is nothing."""
        while True:
            try:
                await asyncio.to_thread(self.sweep_files)
            except Exception:
                log.exception("the sweep of kept files failed; it runs again later")
            await asyncio.sleep(every)

    def file_of_run(self, run_id: str, file_id: str) -> tuple[dict[str, Any], Path | bytes]:
        """A file that run `run_id` carries in its items (input, output or a step's): its reference and where its
        bytes are on disk (to stream) or the bytes (from the database). NotFound when the run does not exist, does
        not carry that file, or the file is no longer kept. Only that run's files: seeing one run does not open
        another's."""
        run = self.store.get_run(run_id)
        steps = self.store.get_steps(run_id)
        places: list[Any] = [run.input, run.output, *(s.outputs for s in steps.values()),
                             *(s.inputs for s in steps.values())]
        for place in places:
            for ref in files_in(place):
                if ref[FILE_KEY] == file_id:
                    try:
                        return ref, self.blobs.local_path(file_id) or self.blobs.get(ref)
                    except FileNotFoundError:
                        raise NotFound(f"the file {ref.get('name')!r} of run {run_id} is no longer kept") from None
        raise NotFound(f"run {run_id} has no file {file_id}")

    async def run_flow(self, flow_id: str, input_items: Items | None = None, *, trigger: str | None = None,
                       source: str = "manual") -> RunResult:
        """Run a stored flow now and wait for it. The run is recorded and survives a crash."""
        return await self.launcher.run_flow(flow_id, input_items, trigger=trigger, source=source)

    def start_run(self, flow_id: str, input_items: Items | None = None, *, trigger: str | None = None,
                  source: str = "manual") -> asyncio.Task[RunResult]:
        task = asyncio.ensure_future(self.run_flow(flow_id, input_items, trigger=trigger, source=source))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def run_draft(self, flow: Flow, input_items: Items | None = None, *, version: int | None = None,
                        trigger: str | None = None, done: dict[str, Step] | None = None,
                        run_id: str | None = None) -> RunResult:
        """Run the editor's working copy of a flow, saved or not (as n8n does), recorded under the flow's id with
        source "editor". `version`: the stored version it equals, None for unsaved changes (such a run is not
        resumed after a crash). `done`: steps of an earlier run to reuse instead of running them ("run this node");
        they are recorded in this run too, so it reads complete. Raises FlowInvalid."""
        plan = build_plan(flow, self.registry)
        run_id = run_id or uuid.uuid4().hex
        trigger = trigger or plan.default_trigger()
        if self.recorder is not None:
            self.store.create_run(run_id, flow.id, version, trigger, input_items or [], EDITOR,
                                  status=RunStatus.running.value, owner=self.owner)
            if done:
                await self.recorder.steps_finished(run_id, [replace(s, run_id=run_id) for s in done.values()], False)
        return await self.engine.run(plan, input_items, run_id=run_id, trigger=trigger, done=done, park=False)

    async def run_file(self, flow: Flow, input_items: Items | None = None, *, trigger: str | None = None
                       ) -> RunResult:
        """Run a flow that is not stored (`flowboard run FILE`): nothing is recorded."""
        engine = Engine(self.services, None, self.bus)  # with the connectors the file carries, installed or not
        return await engine.run(build_plan(flow, self.connectors.registry_for(flow)), input_items, trigger=trigger)

    async def resume_unfinished(self) -> list[RunResult]:
        """Finish the runs a crash interrupted: each continues from its recorded steps, which do not run again. All
        of them go at once (one slow run does not hold the others back); returns their results. The store work runs
        in a thread. A server whose runs go to workers leaves this to them (their recovery sweep)."""
        if self.queue is not None:
            return []
        resumable = await asyncio.to_thread(self._claim_unfinished)
        for run, _, done, _ in resumable:
            log.info("resuming run %s of flow %s (%d steps already done)", run.id, run.flow_id, len(done))
        outcomes = await asyncio.gather(*(
            self.engine.run(plan, run.input, run_id=run.id, trigger=run.trigger, done=done, started=run.started,
                            waits=waits)
            for run, plan, done, waits in resumable), return_exceptions=True)
        results = []
        for (run, *_), outcome in zip(resumable, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                if isinstance(outcome, asyncio.CancelledError):
                    raise outcome
                log.error("run %s could not be resumed: %s", run.id, outcome)
            else:
                results.append(outcome)
        return results

    def _claim_unfinished(self) -> list[tuple[RunRecord, Plan, dict[str, Step], dict[str, Waiting]]]:
        """Claim every unfinished run whose owner is gone, and what resuming each needs. A run that cannot resume is
        marked crashed with the reason."""
        resumable = []
        for run in self.store.unfinished_runs():
            claimed = self._claim(run)
            if claimed is not None:
                resumable.append(claimed)
        return resumable

    def _claim(self, run: RunRecord) -> tuple[RunRecord, Plan, dict[str, Step], dict[str, Waiting]] | None:
        if run.id in self.engine.active_runs or not self.store.claim_run(run.id, self.owner):
            return None
        if run.source == EDITOR and run.flow_version is None:  # its flow (unsaved edits) was never stored
            self.store.mark_run(run.id, RunStatus.crashed.value,
                                {"message": "could not resume: a test run of unsaved changes"}, owner=self.owner)
            return None
        try:
            plan = self.plan(run.flow_id, run.flow_version)
        except Exception as exc:  # the flow or its version is gone, or no longer valid
            self.store.mark_run(run.id, RunStatus.crashed.value, {"message": f"could not resume: {exc}"},
                                owner=self.owner)
            return None
        done = {nid: step for nid, step in self.store.get_steps(run.id).items() if step.status in _RESUMED_STEP}
        return run, plan, done, self.store.waits_of(run.id)

    async def run_claimed(self, run_id: str, on_start: Callable[[RunRecord], None] | None = None
                          ) -> RunResult | None:
        """Claim one recorded run and run it here to its end (or its next wait), from its recorded steps, on its flow
        version: a worker's job. None when it is not to run here: it ended, or a live process has it. `on_start` is
        called once it is claimed."""
        def claim() -> tuple[RunRecord, Plan, dict[str, Step], dict[str, Waiting]] | None:
            try:
                run = self.store.get_run(run_id)
            except NotFound:
                return None
            return self._claim(run) if run.status in (RunStatus.queued, RunStatus.running) else None

        claimed = await asyncio.to_thread(claim)
        if claimed is None:
            return None
        run, plan, done, waits = claimed
        if on_start is not None:
            on_start(run)
        return await self.engine.run(plan, run.input, run_id=run.id, trigger=run.trigger, done=done,
                                     started=run.started, waits=waits)

    def _run_finished(self, plan: Plan, trigger: str, result: RunResult) -> None:
        """Post-run hook: the engine calls it for every run it concludes. A run parked until a deadline wakes the
        sleeper, which may have to wake earlier now; a concluded one goes to the run-finished subscribers (error
        flows) and to a caller parked on it."""
        if result.status is RunStatus.waiting:
            self.sleeper.wake()
            return
        for subscriber in self.finished:
            try:
                subscriber(plan, trigger, result)
            except Exception:
                log.exception("a run-finished subscriber failed on run %s", result.run_id)
        if self.calls.is_child(plan, trigger, result.run_id):  # a caller may be parked on it
            self.launcher.spawn(self.calls.child_finished(result))

    # -- waiting runs -----------------------------------------------------------------------------------------------

    def link_key(self) -> bytes:
        if self._link_key is None:
            self._link_key = self.store.secrets.signing_key("resume links")
        return self._link_key

    def resume_url(self, run_id: str) -> str:
        """The signed URL that resumes the run's waiting node (`{{ run.resume_url }}`): POST, optional JSON data."""
        return f"{self.public_url}{LINK_PATH}/{run_id}/{resume_token(self.link_key(), run_id)}"

    def resume_token_valid(self, run_id: str, token: str) -> bool:
        return token_valid(self.link_key(), run_id, token)

    def start_waiting(self) -> None:
        """Resume parked runs at their deadlines from now on (the server calls it at start)."""
        self.sleeper.start()

    async def resume_waiting(self, run_id: str, node_id: str, payload: Any = None, *,
                             who: str | None = None) -> asyncio.Task[RunResult]:
        """Resume a run parked at `node_id`: the node's output comes from `payload` (its `resume`; a deadline passes
        None), and the run goes on from its recorded steps, on the flow version it started with. `who` says who
        resumed it, in words, for the record ("Ada", "resume link", "timer"). Raises WaitGone when the node is not
        waiting (resumed already, by whom and when; or the run ended). Returns the run's task (it is going)."""
        if self.queue is not None:  # a worker runs it: the run is taken with no owner, and its job deferred
            run = await asyncio.to_thread(self.store.resume_wait, run_id, node_id, None, payload, who)
            mode = RunMode.parallel
            with contextlib.suppress(Exception):
                mode = self.plan(run.flow_id, run.flow_version).flow.settings.run_mode
            await self.queue.resume(run.flow_id, run_id, mode)
            log.info("waiting run %s of flow %s goes on at node %s on a worker (%s)", run_id, run.flow_id, node_id,
                     who or "a call")
            return self.launcher.spawn(self.queue.wait_for(run_id))
        run = await asyncio.to_thread(self.store.resume_wait, run_id, node_id, self.owner, payload, who)
        try:
            plan, done, waits = await asyncio.to_thread(self._resumable, run)
        except Exception as exc:
            await asyncio.to_thread(self.store.mark_run, run_id, RunStatus.crashed,
                                    {"message": f"could not resume: {exc}"}, owner=self.owner)
            raise WaitGone(f"run {run_id} could not resume: {exc}") from None
        log.info("resuming waiting run %s of flow %s at node %s (%s)", run_id, run.flow_id, node_id, who or "a call")
        return self.launcher.spawn(self.engine.run(plan, run.input, run_id=run_id, trigger=run.trigger, done=done,
                                                   started=run.started, waits=waits))

    async def resume_due(self) -> list[RunResult]:
        """Resume every parked run whose deadline has passed, and wait for them (`flowboard resume`; a server's
        sleeper does this by itself)."""
        tasks = []
        for run_id, node_id in await asyncio.to_thread(self.store.due_waits, time.time(), 100_000):
            try:
                tasks.append(await self.resume_waiting(run_id, node_id, None, who="timer"))
            except WaitGone:  # taken by another process meanwhile
                continue
        return list(await asyncio.gather(*tasks))

    def _resumable(self, run: RunRecord) -> tuple[Plan, dict[str, Step], dict[str, Waiting]]:
        if run.source == EDITOR and run.flow_version is None:
            raise ValueError("it is a test run of unsaved changes")
        plan = self.plan(run.flow_id, run.flow_version)
        done = {nid: step for nid, step in self.store.get_steps(run.id).items() if step.status in _RESUMED_STEP}
        return plan, done, self.store.waits_of(run.id)

    def cancel(self, run_id: str) -> bool:
        """Stop a run: one going in this process is cancelled at once; a parked (waiting) one ends `cancelled` in the
        store, and so do the called flows it was waiting on. False when it was neither."""
        if self.engine.cancel(run_id):
            return True
        children = [w.data.get("child_run") for w in self.store.waits_of(run_id).values()
                    if isinstance(w.data, dict) and not w.resumed]
        if not self.store.cancel_waiting(run_id):
            return self._cancel_elsewhere(run_id)
        self.bus.publish(Event("run.finished", run_id, self.store.get_run(run_id).flow_id,
                               status=RunStatus.cancelled.value, message="the run was cancelled"))
        for child in children:
            if isinstance(child, str):
                self.cancel(child)
        return True

    def _cancel_elsewhere(self, run_id: str) -> bool:
        """A run going in another process (a worker): one nobody took yet ends here; one that runs is stopped by its
        process, which hears it at once (PostgreSQL NOTIFY). False when neither (it ended, or SQLite)."""
        if not self.notices.enabled:
            return False
        try:
            run = self.store.get_run(run_id)
        except NotFound:
            return False
        if run.status not in (RunStatus.queued, RunStatus.running):
            return False
        if run.owner is None and self.store.claim_run(run_id, self.owner):
            self.store.mark_run(run_id, RunStatus.cancelled, {"message": "the run was cancelled"}, owner=self.owner)
            self.bus.publish(Event("run.finished", run_id, run.flow_id, status=RunStatus.cancelled.value,
                                   message="the run was cancelled"))
            return True
        self.notices.send("cancel", run_id=run_id)
        return True

    async def retry_run(self, run_id: str) -> asyncio.Task[RunResult]:
        """Run a failed (or cancelled, or crashed) run again from where it failed, in place: the same run id, on the
        flow version it ran with, with its input. Its succeeded steps are kept and not run again; the step that failed
        and everything after it run now. Returns the run's task (it is going). Raises NotFound, and RetryRefused when
        the run did not fail or is being retried already. The store work runs in a thread."""
        plan, run, trigger, done = await asyncio.to_thread(self._reopen, run_id)
        log.info("retrying run %s of flow %s (%d steps kept)", run_id, run.flow_id, len(done))
        return self.launcher.spawn(self.engine.run(plan, run.input, run_id=run_id, trigger=trigger, done=done))

    def _reopen(self, run_id: str) -> tuple[Plan, RunRecord, str | None, dict[str, Step]]:
        run = self.store.get_run(run_id)
        if run.status not in RETRYABLE:
            raise RetryRefused(f"only a failed, cancelled or crashed run can be retried; this one is "
                               f"{run.status.value}")
        plan = self.plan(run.flow_id, run.flow_version)
        trigger = run.trigger if run.trigger in plan.nodes else plan.default_trigger()
        done = reusable_steps(plan, self.store.get_steps(run_id))
        if not self.store.reopen_run(run_id, self.owner, list(done)):
            raise RetryRefused("the run is being retried already")
        return plan, run, trigger, done

    async def aclose(self) -> None:
        await self.error_flows.settle()  # a failed run's error flow still runs (`flowboard run`)
        self.triggers.close()
        self.launcher.close()
        await self.approvals.stop()
        for task in list(self._tasks):
            task.cancel()
        await self.sleeper.aclose()
        if isinstance(self.engine.lease, Lease):
            await self.engine.lease.aclose()
        if self.queue is not None:
            await self.queue.aclose()
        await self.notices.aclose()
        await self.engine.aclose()
        self.store.close()


#: Node events a worker passes on to the servers (`node.<kind>`)
NODE_EVENTS = frozenset({"started", "progress", "finished", "failed", "skipped", "waiting", "cancelled"})
EDITOR = "editor"  # the source of the editor's test runs
RETRYABLE = (RunStatus.failed, RunStatus.cancelled, RunStatus.crashed)


class RetryRefused(FlowboardError):
    """The run cannot be retried: it did not fail, or it is being retried already."""


def reusable_steps(plan: Plan, steps: dict[str, Step]) -> dict[str, Step]:
    """The steps of a failed run that a retry keeps: succeeded and skipped ones, and failures that did not stop the
    run (on_error continue or error port). The step that stopped it, and any cancelled with it, run again."""
    done = {}
    for nid, step in steps.items():
        pn = plan.nodes.get(nid)
        if pn is None:
            continue
        if step.status in (StepStatus.succeeded, StepStatus.skipped) or (
                step.status is StepStatus.failed and pn.node.settings.on_error is not OnError.stop):
            done[nid] = step
    return done
_FINAL_STEP = frozenset({StepStatus.succeeded, StepStatus.failed, StepStatus.skipped})
#: The recorded steps a resumed run starts from: the finished ones, and the ones a stop interrupted (`running`: a node
#: whose work must not be repeated was recorded as started; the engine fails such a step instead of running it again)
_RESUMED_STEP = _FINAL_STEP | {StepStatus.running}


def load_examples(app: Flowboard, folder: Path, names: Iterable[str] | None = None) -> int:
    """Import the example flows on first start, so a new user has something to open."""
    count = 0
    for path in sorted(folder.glob("*.json")):
        if names is not None and path.stem not in names:
            continue
        try:
            flow = app.parse(path.read_text())
        except FlowInvalid as exc:
            log.error("example %s is invalid: %s", path.name, exc)
            continue
        if not app.store.flow_exists(flow.id):
            app.store.save_flow(flow, expected_version=None, note="example")
            count += 1
    return count

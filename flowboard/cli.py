"""The `flowboard` command. With no command it starts the server; see `flowboard --help`.

Exit codes: 0 done (run succeeded), 1 the run failed, 2 invalid flow or usage.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import FlowInvalid
from .jsonlimits import JsonRefused, read_json

if TYPE_CHECKING:
    from .services import Flowboard

EXIT_OK, EXIT_RUN_FAILED, EXIT_INVALID = 0, 1, 2


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra and getattr(args, "cred_command", None) == "set" and all("=" in a for a in extra):
        args.fields += extra  # `credential set NAME --type T FIELD=VALUE ...`: argparse ends `fields` at `--type`
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if getattr(args, "data_dir", None):
        os.environ["FLOWBOARD_DATA_DIR"] = str(Path(args.data_dir).expanduser().resolve())
    command = args.command or "serve"
    if command != "serve":
        gc.enable()  # (off while `flowboard` starts: __main__.py)
    try:
        return int(COMMANDS[command](args) or 0)
    except FlowInvalid as exc:
        _problems(exc)
        return EXIT_INVALID
    except _UsageError as exc:
        print(f"flowboard: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except KeyboardInterrupt:
        return 130


class _UsageError(Exception):
    pass


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", default=argparse.SUPPRESS,
                        help="folder for the database and keys (default: $FLOWBOARD_DATA_DIR or "
                                           "~/.flowboard)")
    parser = argparse.ArgumentParser(prog="flowboard", parents=[common],
                                     description="Build, run and watch flows. With no command: start the editor.")
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port to serve on (default 8080)")
    parser.add_argument("--no-browser", action="store_true", help="do not open a browser")
    parser.add_argument("--no-record", action="store_true", help="do not record runs (benchmarks; also "
                                                                  "FLOWBOARD_RECORD=0)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = sub.add_parser("serve", parents=[common], help="start the editor, API and triggers (the default)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--no-browser", action="store_true")
    serve.add_argument("--no-record", action="store_true")
    serve.add_argument("--dispatch", choices=("process", "procrastinate"), default=None,
                       help="where triggered runs go: process (this server, the default) or procrastinate (queued "
                            "for `flowboard worker` processes; PostgreSQL only; also FLOWBOARD_DISPATCH)")

    worker = sub.add_parser("worker", parents=[common], help="run queued flows (PostgreSQL: set "
                            "FLOWBOARD_DATABASE_URL as for the server, which runs with --dispatch procrastinate)")
    worker.add_argument("--concurrency", type=int, default=16, help="runs at a time (default 16)")
    worker.add_argument("--graceful", type=float, default=30.0, help="seconds the runs going get to finish on "
                        "SIGTERM before they are handed back to the queue (default 30)")
    worker.add_argument("--metrics-port", type=int, default=None, help="serve Prometheus metrics at "
                        "http://127.0.0.1:PORT/metrics")

    demo = sub.add_parser("demo", parents=[common], help="start the editor with local stand-ins of the platforms the "
                          "example business flows call (CRM, invoicing, accounting, chat) on port 8091")
    demo.add_argument("--port", type=int, default=8080)
    demo.add_argument("--no-browser", action="store_true")

    run = sub.add_parser("run", parents=[common], help="run a flow file or a stored flow and print the result")
    run.add_argument("flow", help="a flow file (FLOW.json) or the id or name of a stored flow")
    run.add_argument("--input", help="input items: a JSON object or a list of objects (or @file.json)")
    run.add_argument("--trigger", help="id of the trigger node to start from (default: the manual trigger)")

    validate = sub.add_parser("validate", parents=[common], help="check a flow file and list every problem")
    validate.add_argument("file")

    imp = sub.add_parser("import", parents=[common], help="store a flow file (checked first; nothing is written if "
                                                           "it is invalid)")
    imp.add_argument("file")

    exp = sub.add_parser("export", parents=[common], help="write a stored flow as a flow file")
    exp.add_argument("flow", help="id or name of a stored flow")
    exp.add_argument("-o", "--output", help="file to write (default: standard output)")

    sub.add_parser("list", parents=[common], help="list stored flows")
    sub.add_parser("schema", parents=[common], help="print the flow file's JSON Schema")
    nodes = sub.add_parser("nodes", parents=[common], help="list the installed node types")
    nodes.add_argument("--markdown", action="store_true", help="print the node reference as Markdown")
    sub.add_parser("resume", parents=[common], help="finish runs that a crash interrupted")
    act = sub.add_parser("activate", parents=[common], help="switch a stored flow's triggers on (webhooks answer at "
                                                            "the next server start)")
    act.add_argument("flow", help="id or name of a stored flow")
    deact = sub.add_parser("deactivate", parents=[common], help="switch a stored flow's triggers off")
    deact.add_argument("flow", help="id or name of a stored flow")
    keys = sub.add_parser("api-key", parents=[common], help="make, list and revoke keys for the REST API (/api/v1)")
    key_actions = keys.add_subparsers(dest="key_command", metavar="ACTION", required=True)
    create = key_actions.add_parser("create", parents=[common], help="make a key and print it (shown this once only)")
    create.add_argument("name", help="who or what will use it, e.g. 'backup script'")
    create.add_argument("--user", help="the user the key acts for, with their roles (default: an admin key)")
    key_actions.add_parser("list", parents=[common], help="list the keys (never the keys themselves)")
    revoke = key_actions.add_parser("revoke", parents=[common], help="delete a key: calls with it are refused at once")
    revoke.add_argument("id", help="the key's id (see `flowboard api-key list`)")
    users = sub.add_parser("user", parents=[common], help="add, list, change and remove the people who sign in")
    user_actions = users.add_subparsers(dest="user_command", metavar="ACTION", required=True)
    user_add = user_actions.add_parser("add", parents=[common], help="add a user (asks for the password)")
    user_add.add_argument("name", help="the user name they sign in with, e.g. ada")
    user_add.add_argument("--role", action="append", required=True, metavar="ROLE",
                          help="admin, editor, approver or requester (repeat it for several roles)")
    user_add.add_argument("--full-name", default="", help="the name others see, e.g. 'Ada Lovelace'")
    user_add.add_argument("--email", help="their email address (for approval messages)")
    user_actions.add_parser("list", parents=[common], help="list the users and their roles")
    passwd = user_actions.add_parser("passwd", parents=[common],
                                     help="set a user's password (asks for it); signs them out everywhere")
    passwd.add_argument("name")
    roles = user_actions.add_parser("roles", parents=[common], help="set a user's roles")
    roles.add_argument("name")
    roles.add_argument("--role", action="append", required=True, metavar="ROLE")
    remove = user_actions.add_parser("remove", parents=[common], help="remove a user, their sessions and API keys")
    remove.add_argument("name")
    creds = sub.add_parser("credential", parents=[common], help="set, list and delete credentials (encrypted at rest)")
    cred_actions = creds.add_subparsers(dest="cred_command", metavar="ACTION", required=True)
    cred_set = cred_actions.add_parser("set", parents=[common], help="create or change a credential")
    cred_set.add_argument("name", help="the name flows use, e.g. 'github'")
    cred_set.add_argument("--type", required=True,
                          help="the credential type, e.g. api_key, bearer, basic, oauth2_client, oauth2_code, db, "
                               "database, smtp, secret; `flowboard credential types` lists them with their fields")
    cred_set.add_argument("fields", nargs="*", metavar="FIELD=VALUE",
                          help="the type's fields; VALUE '-' reads it from standard input (keeps it out of the "
                               "shell history). Changing a credential, a field left out keeps its value")
    cred_actions.add_parser("list", parents=[common], help="list the credentials (never their values)")
    cred_delete = cred_actions.add_parser("delete", parents=[common],
                                          help="delete a credential (refused while flows use it, naming them)")
    cred_delete.add_argument("name")
    cred_test = cred_actions.add_parser("test", parents=[common], help="test a credential's connection (database: "
                                        "connect and SELECT 1; mail server: log in; OAuth2: get a token; HTTP types: "
                                        "call its test address)")
    cred_test.add_argument("name")
    cred_actions.add_parser("types", parents=[common], help="list the credential types and their fields")
    secret_key = sub.add_parser("secret-key", parents=[common], help="manage the key that encrypts the credentials")
    key_actions = secret_key.add_subparsers(dest="key_command", metavar="ACTION", required=True)
    key_actions.add_parser("rotate", parents=[common], help="re-encrypt every credential under a new key, all or "
                           "nothing (a running server takes the new key by itself)")
    conn = sub.add_parser("connector", parents=[common], help="import, list and remove OpenAPI connectors (each "
                          "operation of an API becomes a node)")
    conn_actions = conn.add_subparsers(dest="connector_command", metavar="ACTION", required=True)
    conn_import = conn_actions.add_parser("import", parents=[common], help="import an OpenAPI 3.0/3.1 document (JSON "
                                          "or YAML); importing one with the same name again shows what changed")
    conn_import.add_argument("source", help="a file, or the document's http(s) address (e.g. "
                                            "https://api.example.com/openapi.json)")
    conn_import.add_argument("--name", help="the connector's name (default: from the API's title); node types are "
                                            "api.NAME.OPERATION")
    conn_import.add_argument("--server", help="the API's base address, when the document names none or another one")
    conn_import.add_argument("--check", action="store_true", help="only show what would change; import nothing")
    conn_actions.add_parser("list", parents=[common], help="list the connectors and their operations")
    conn_remove = conn_actions.add_parser("remove", parents=[common], help="remove a connector no flow uses")
    conn_remove.add_argument("name")
    audit = sub.add_parser("audit", parents=[common], help="check the approval decision log")
    audit_actions = audit.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    audit_actions.add_parser("verify", parents=[common], help="recompute the log's hash chain and check every approval "
                                                              "task against it; exit code 1 names the first problem")
    approvals = sub.add_parser("approvals", parents=[common], help="list approval tasks or export them as CSV")
    approvals.add_argument("--status", action="append", help="only tasks in this state: open, decided, timed_out, "
                                                             "cancelled (repeat it)")
    approvals.add_argument("--csv", action="store_true", help="write CSV instead of a table")
    approvals.add_argument("-o", "--output", help="file to write (default: standard output)")
    return parser


def _problems(exc: FlowInvalid) -> None:
    count = len(exc.problems)
    print(f"The flow is not valid ({count} problem{'s' if count != 1 else ''}):", file=sys.stderr)
    for problem in exc.problems:
        print(f"  - {problem}", file=sys.stderr)


def _read_file(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise _UsageError(f"cannot read {path}: {exc.strerror}") from None


def _input(value: str | None) -> list[dict[str, Any]] | None:
    if value is None:
        return None
    from .model import MAX_FLOW_BYTES

    text: bytes | str = _read_file(value[1:]) if value.startswith("@") else value
    try:
        data = read_json(text, max_bytes=MAX_FLOW_BYTES, what="--input")
    except JsonRefused as exc:
        message = str(exc)
        raise _UsageError(message.replace("this is", "--input is", 1) if message.startswith("this is")
                          else message) from None
    if isinstance(data, dict):
        return [data]
    if isinstance(data, list) and all(isinstance(item, dict) for item in data):
        return data
    raise _UsageError("--input must be a JSON object or a list of objects, e.g. '{\"name\": \"Ada\"}'")


def _app(record: bool = True) -> Flowboard:
    from .services import Flowboard

    return Flowboard(record=record)


def cmd_run(args: argparse.Namespace) -> int:
    items = _input(args.input)
    path = Path(args.flow)
    is_file = path.suffix == ".json" or path.exists()

    async def go() -> Any:
        app = _app(record=not is_file)
        try:
            if is_file:
                flow = app.parse(_read_file(args.flow))
                return await app.run_file(flow, items, trigger=args.trigger)
            return await app.run_flow(_find(app, args.flow), items, trigger=args.trigger, source="cli")
        finally:
            await app.aclose()

    result = asyncio.run(go())
    print(json.dumps(result.summary(), indent=2, ensure_ascii=False, default=str))
    if result.status.value == "waiting":
        if is_file:
            print("The run waits (for a person's approval or a timer), but a run of a flow file is not kept, so it "
                  f"cannot go on. Store the flow first (flowboard import {args.flow}) and run it by its name.",
                  file=sys.stderr)
            return EXIT_RUN_FAILED
        print("The run waits (for a person's approval or a timer). It goes on by itself once that is answered, "
              "while `flowboard serve` runs (approvers answer in their inbox).", file=sys.stderr)
        return EXIT_OK
    return EXIT_OK if result.status.value == "succeeded" else EXIT_RUN_FAILED


def _find(app: Any, key: str) -> str:
    from .store import NotFound

    try:
        return str(app.find_flow(key))
    except NotFound as exc:
        raise _UsageError(str(exc)) from None


def cmd_validate(args: argparse.Namespace) -> int:
    from .engine import build_plan
    from .model import parse_flow
    from .registry import default_registry

    flow = parse_flow(_read_file(args.file))
    build_plan(flow, default_registry())
    print(f"{args.file}: valid ({len(flow.nodes)} nodes, {len(flow.edges)} connections)")
    return EXIT_OK


def cmd_import(args: argparse.Namespace) -> int:
    app = _app()
    try:
        flow, version = app.import_flow(_read_file(args.file))
    finally:
        asyncio.run(app.aclose())
    print(f"imported {flow.name!r} as {flow.id} (version {version})")
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    app = _app()
    try:
        text = app.export_flow(_find(app, args.flow))
    finally:
        asyncio.run(app.aclose())
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    app = _app()
    try:
        flows = app.store.list_flows()
    finally:
        asyncio.run(app.aclose())
    if not flows:
        print("no flows yet: `flowboard import FILE` or open the editor")
    for f in flows:
        last = f"{f.last_run_status} {f.last_run_at}" if f.last_run_status else "never run"
        print(f"{f.id:14} v{f.version:<3} {'active  ' if f.active else 'inactive'} {f.name}  ({last})")
    return EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    from .model import flow_schema

    print(json.dumps(flow_schema(), indent=2, sort_keys=True))
    return EXIT_OK


def cmd_nodes(args: argparse.Namespace) -> int:
    from .docs import node_reference
    from .registry import default_registry

    registry = default_registry()
    if args.markdown:
        sys.stdout.write(node_reference(registry))
        return EXIT_OK
    for entry in registry.catalog():
        ports = f"{','.join(entry['inputs']) or '-'} → {','.join(entry['outputs'])}"
        package = registry.package(entry["type"]) or "-"
        print(f"{entry['type']:20} v{entry['version']}  {entry['category']:11} {entry['title']:22} {ports:28} "
              f"[{package}] {entry['description']}")
    return EXIT_OK


def cmd_resume(args: argparse.Namespace) -> int:
    async def go() -> list[Any]:
        app = _app()
        try:
            return await app.resume_unfinished() + await app.resume_due()
        finally:
            await app.aclose()

    results = asyncio.run(go())
    for r in results:
        print(f"run {r.run_id}: {r.status.value}")
    if not results:
        print("no interrupted runs")
    return EXIT_OK if all(r.status.value in ("succeeded", "waiting") for r in results) else EXIT_RUN_FAILED


def cmd_serve(args: argparse.Namespace) -> int:
    from .server import serve

    if getattr(args, "dispatch", None):
        os.environ["FLOWBOARD_DISPATCH"] = args.dispatch
    return serve(host=args.host, port=args.port, open_browser=not args.no_browser,
                 record=False if args.no_record else None)


def cmd_worker(args: argparse.Namespace) -> int:
    from .runs.queue import serve_worker

    return serve_worker(concurrency=args.concurrency, graceful=args.graceful, metrics_port=args.metrics_port)


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import DemoServer, prepare

    stand_ins = DemoServer().start()
    app = _app()
    try:
        for line in prepare(app):
            print(line)
    finally:
        app.store.close()
    print("stand-ins (not real services) at http://127.0.0.1:8091/ : what they received is listed there")
    from .server import serve

    try:
        return serve(port=args.port, open_browser=not args.no_browser)
    finally:
        stand_ins.stop()


def cmd_activate(args: argparse.Namespace) -> int:
    app = _app()
    try:
        flow_id = _find(app, args.flow)
        if args.command == "activate":
            app.activate(flow_id)
        else:
            app.deactivate(flow_id)
    finally:
        asyncio.run(app.aclose())
    print(f"{args.command}d {flow_id}")
    return EXIT_OK


def cmd_api_key(args: argparse.Namespace) -> int:
    import time

    from .store import NotFound, Store

    def when(t: float | None) -> str:
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(t)) if t is not None else "never"

    store = Store()
    try:
        if args.key_command == "create":
            owner = None
            if args.user:
                from .auth import AccountError, Accounts

                try:
                    owner = Accounts(store).get_user(args.user).id
                except AccountError as exc:
                    raise _UsageError(str(exc)) from None
            try:
                info, key = store.create_api_key(args.name, user_id=owner)
            except ValueError as exc:
                raise _UsageError(str(exc)) from None
            print(key)  # alone on stdout, so `KEY=$(flowboard api-key create NAME)` works
            print(f"API key {info.id} ({info.name!r}) created. Copy it now: Flowboard keeps only its hash and cannot "
                  "show it again. Send it as `X-API-Key: <key>` or `Authorization: Bearer <key>`.", file=sys.stderr)
        elif args.key_command == "list":
            keys = store.list_api_keys()
            if not keys:
                print("no API keys yet: `flowboard api-key create NAME`")
            for k in keys:
                print(f"{k.id:14} {k.prefix}…  created {when(k.created)}  last used {when(k.last_used):16}  {k.name}")
        else:
            try:
                store.revoke_api_key(args.id)
            except NotFound as exc:
                raise _UsageError(str(exc)) from None
            print(f"revoked API key {args.id}")
    finally:
        store.close()
    return EXIT_OK


def cmd_credential(args: argparse.Namespace) -> int:
    import time

    from . import credential_types
    from .registry import default_registry
    from .store import CredentialInUse, NotFound, Store

    default_registry()  # node packages may add credential types
    if args.cred_command == "types":
        for declaration in credential_types.all_types().values():
            fields = ", ".join(f.key + ("?" if f.optional else "") + (" (secret)" if f.secret else "")
                               for f in declaration.fields)
            print(f"{declaration.type:14} {declaration.label}: {fields}")
        print("(a field with ? may stay empty)")
        return EXIT_OK
    if args.cred_command == "test":
        return _test_credential(args.name)
    store = Store()
    try:
        if args.cred_command == "set":
            entered: dict[str, str] = {}
            for pair in args.fields:
                key, sep, value = pair.partition("=")
                if not sep or not key:
                    raise _UsageError(f"{pair!r} is not FIELD=VALUE")
                entered[key] = sys.stdin.readline().rstrip("\r\n") if value == "-" else value
            old = next((c for c in store.list_credentials() if c.name == args.name), None)
            stored = store.get_credential(args.name) if old is not None and old.type == args.type else None
            try:
                data = credential_types.credential_data(args.type, entered, stored)
            except ValueError as exc:
                raise _UsageError(str(exc)) from None
            store.set_credential(args.name, args.type, data)
            print(f"{'changed' if old else 'created'} credential {args.name} ({args.type})")
        elif args.cred_command == "list":
            items = store.list_credentials()
            if not items:
                print("no credentials yet: `flowboard credential set NAME --type TYPE FIELD=VALUE ...`")
            for c in items:
                print(f"{c.name:24} {c.type:13} updated {time.strftime('%Y-%m-%d %H:%M', time.localtime(c.updated))}"
                      + (f"  PROBLEM: {c.problem}" if c.problem else ""))
        else:
            try:
                store.delete_credential(args.name)
            except (NotFound, CredentialInUse) as exc:
                raise _UsageError(str(exc)) from None
            print(f"deleted credential {args.name}")
    finally:
        store.close()
    return EXIT_OK


def cmd_connector(args: argparse.Namespace) -> int:
    from .connectors import ConnectorInUse
    from .openapi import ApiInvalid
    from .store import NotFound

    app = _app()
    try:
        if args.connector_command == "import":
            try:
                if args.source.lower().startswith(("http://", "https://")):
                    preview = app.connectors.fetch(args.source, server=args.server or "", name=args.name or "")
                else:
                    preview = app.connectors.read(_read_file(args.source), source=Path(args.source).name,
                                                  server=args.server or "", name=args.name or "")
            except ApiInvalid as exc:
                print(f"{args.source} cannot be imported:", file=sys.stderr)
                for problem in exc.problems:
                    print(f"  {problem}", file=sys.stderr)
                return EXIT_INVALID
            api = preview.api
            print(f"{'would import' if args.check else 'imported'} connector {api.name} ({api.title} {api.version})"
                  f": {len(api.operations)} operations" if not preview.existing else
                  f"{'would re-import' if args.check else 're-imported'} connector {api.name} ({api.title} "
                  f"{api.version})")
            for line in preview.lines():
                print(f"  {line}")
            if not args.check:
                app.connectors.save(preview)
        elif args.connector_command == "list":
            records = app.connectors.all()
            if not records:
                print("no connectors yet: `flowboard connector import FILE-OR-URL`")
            for record in records:
                known = app.connectors.apis.get(record.name)
                print(f"{record.name}: {record.title} ({record.source or 'pasted'})")
                for op in (known.operations.values() if known else []):
                    print(f"  api.{record.name}.{op.key:28} {op.method:6} {op.path}  {op.title}")
        else:
            try:
                app.connectors.remove(args.name)
            except (ConnectorInUse, NotFound) as exc:
                raise _UsageError(str(exc)) from None
            print(f"removed connector {args.name}")
    finally:
        asyncio.run(app.aclose())
    return EXIT_OK


def _test_credential(name: str) -> int:
    from .services import Flowboard
    from .store import NotFound

    fb = Flowboard(record=False)
    try:
        message = asyncio.run(fb.test_credential(name))
    except NotFound as exc:
        raise _UsageError(str(exc)) from None
    except ValueError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return EXIT_RUN_FAILED
    finally:
        fb.store.close()
    print(f"{name}: {message}")
    return EXIT_OK


def cmd_secret_key(args: argparse.Namespace) -> int:
    from .store import SecretKeyError, Store

    store = Store()
    try:
        count = store.rotate_secret_key()
    except SecretKeyError as exc:
        raise _UsageError(str(exc)) from None
    except Exception as exc:
        print(f"nothing changed: the rotation stopped ({type(exc).__name__}: {exc}); the old key and every credential "
              "are as they were", file=sys.stderr)
        return EXIT_RUN_FAILED
    finally:
        store.close()
    print(f"re-encrypted {count} credential{'s' if count != 1 else ''} under a new secret key. Back up the new key "
          "with the database; links in approval emails sent before now no longer work")
    return EXIT_OK


def cmd_audit(args: argparse.Namespace) -> int:
    from .store import Store
    from .store.approvals import ApprovalStore

    store = Store()
    try:
        result = ApprovalStore(store.engine).verify()
    finally:
        store.close()
    if not result.ok:
        print(f"The decision log does NOT check out ({result.entries} entries):", file=sys.stderr)
        for problem in result.problems:
            print(f"  - {problem}", file=sys.stderr)
        return EXIT_RUN_FAILED
    print(f"The decision log checks out: {result.entries} entries, every task agrees with it.")
    print(f"Head hash (keep a copy to detect a rewritten history later): {result.head}")
    return EXIT_OK


def cmd_approvals(args: argparse.Namespace) -> int:
    import time

    from .store import Store
    from .store.approvals import STATUSES, ApprovalStore

    for status in args.status or []:
        if status not in STATUSES:
            raise _UsageError(f"--status {status!r} is not one of {', '.join(STATUSES)}")
    store = Store()
    try:
        approvals = ApprovalStore(store.engine)
        tasks = approvals.list_tasks(status=args.status or None, limit=1_000_000)
        if args.csv or (args.output and args.output.endswith(".csv")):
            text = approvals.to_csv(tasks)
        else:
            lines = [f"{t.id[:12]}  {time.strftime('%Y-%m-%d %H:%M', time.localtime(t.created))}  "
                     f"{t.describe():40.40}  {t.title}" for t in tasks]
            text = "\n".join(lines) + "\n" if lines else "no approval tasks yet\n"
    finally:
        store.close()
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8", newline="")
        print(f"wrote {len(tasks)} tasks to {args.output}")
    else:
        sys.stdout.write(text)
    return EXIT_OK


def _password(prompt: str) -> str:
    """From the terminal (asked twice, not shown), or one line of standard input (scripts: `echo PW | flowboard user
    add ...`)."""
    import getpass

    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass(f"{prompt}: ")
    if getpass.getpass("The same password again: ") != first:
        raise _UsageError("the two passwords are not the same; nothing was changed")
    return first


def cmd_user(args: argparse.Namespace) -> int:
    import time

    from .auth import DESCRIPTIONS, AccountError, Accounts, Role
    from .store import Store

    store = Store()
    accounts = Accounts(store)
    try:
        if args.user_command == "add":
            user = accounts.add_user(args.name, _password(f"Password for {args.name}"), args.role,
                                     full_name=args.full_name, email=args.email)
            print(f"added {user.name} ({', '.join(user.roles)}). They sign in at the editor's address.")
        elif args.user_command == "list":
            users = accounts.list_users()
            if not users:
                print("no users yet: Flowboard runs for this computer alone. Add an admin with "
                      "`flowboard user add --role admin NAME`")
            for u in users:
                created = time.strftime("%Y-%m-%d", time.localtime(u.created))
                print(f"{u.name:20} {', '.join(u.roles):28} {u.full_name or '-':24} {u.email or '-':28} "
                      f"added {created}")
        elif args.user_command == "passwd":
            user = accounts.get_user(args.name)
            ended = accounts.set_password(user.name, _password(f"New password for {user.name}"))
            print(f"changed the password of {user.name}; {ended} session{'s' if ended != 1 else ''} signed out")
        elif args.user_command == "roles":
            user = accounts.set_roles(args.name, args.role)
            print(f"{user.name} is now: " + "; ".join(f"{r} ({DESCRIPTIONS[Role(r)]})" for r in user.roles))
        else:
            user = accounts.get_user(args.name)
            accounts.remove_user(user.name)
            print(f"removed {user.name}, with their sessions and API keys")
    except AccountError as exc:
        raise _UsageError(str(exc)) from None
    finally:
        store.close()
    return EXIT_OK


COMMANDS = {
    "serve": cmd_serve, "worker": cmd_worker, "demo": cmd_demo, "run": cmd_run, "validate": cmd_validate,
    "import": cmd_import, "export": cmd_export,
    "list": cmd_list, "schema": cmd_schema, "nodes": cmd_nodes, "resume": cmd_resume,
    "activate": cmd_activate, "deactivate": cmd_activate, "api-key": cmd_api_key,
    "credential": cmd_credential, "secret-key": cmd_secret_key, "connector": cmd_connector, "audit": cmd_audit,
    "approvals": cmd_approvals,
    "user": cmd_user,
}

if __name__ == "__main__":
    raise SystemExit(main())

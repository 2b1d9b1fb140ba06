"""What the sign-in guard costs: echo-webhook req/s, and an API call's, before and after accounts, side by side.

    python bench/guard.py --before /tmp/flowboard-before    # a copy of the tree before accounts (git archive)
    python bench/guard.py --before /tmp/flowboard-before --rounds 5 --duration 5
    python bench/guard.py --in-process                       # the guard's own µs per request, no server

For each round, each server in turn (alternating, so drift on a shared machine hits both alike): a fresh data
folder with the echo flow (bench/flows/echo.json) active, `flowboard serve --no-record`, then wrk -t2 -c32 on
`POST /webhook/echo` and on `GET /api/v1/nodes` with an API key. "after" runs with accounts on (an admin exists,
so every page needs a session) and once more in single-user mode. Prints medians and the ratios after/before.
Loopback only, bounded in time.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
POST_LUA = Path("/work/shared/peers/common/post.lua")


def start(tree: Path, data: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("FLOWBOARD_")}, "FLOWBOARD_DATA_DIR": str(data),
           "PYTHONPATH": str(tree)}
    proc = subprocess.Popen([sys.executable, "-m", "flowboard", "serve", "--no-browser", "--no-record", "--port",
                             str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.post(f"http://127.0.0.1:{port}/webhook/echo", json={"x": 1}, timeout=2).status_code == 200 and \
                    httpx.get(f"http://127.0.0.1:{port}/docs", timeout=30).status_code in (200, 303):  # the full app
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"the server from {tree} did not start")


def cli(tree: Path, data: Path, *args: str, stdin: str | None = None) -> str:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("FLOWBOARD_")}, "FLOWBOARD_DATA_DIR": str(data),
           "PYTHONPATH": str(tree)}
    done = subprocess.run([sys.executable, "-m", "flowboard", *args], env=env, capture_output=True, text=True,
                          input=stdin, check=True)
    return done.stdout.strip()


def prepare(tree: Path, accounts: bool) -> tuple[Path, str]:
    data = Path(tempfile.mkdtemp(prefix="flowboard-guard-"))
    cli(tree, data, "import", str(HERE / "flows" / "echo.json"))
    cli(tree, data, "activate", "bench-echo")
    if accounts:
        cli(tree, data, "user", "add", "ada", "--role", "admin", stdin="a-long-password\n")
    return data, cli(tree, data, "api-key", "create", "bench")


def wrk(url: str, duration: int, *extra: str) -> float:
    out = subprocess.run(["wrk", "-t2", "-c32", f"-d{duration}s", "--timeout", "10s", *extra, url],
                         capture_output=True, text=True).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not match:
        raise RuntimeError("wrk failed:\n" + out)
    return float(match.group(1))


def in_process(calls: int = 20_000) -> None:
    """The guard's own cost per request, in process (no server, no network: immune to a busy machine's noise)."""
    import asyncio

    from flowboard.auth import Accounts
    from flowboard.auth.guard import AuthGuard
    from flowboard.store import Store

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        return None

    async def run() -> None:
        data = Path(tempfile.mkdtemp(prefix="flowboard-guard-inproc-"))
        store = Store(data_dir=data)
        accounts = Accounts(store)
        accounts.add_user("ada", "a-long-password", ["admin"])
        token, _ = accounts.sign_in("ada", "a-long-password")
        _, key = store.create_api_key("bench")
        guard = AuthGuard(inner, accounts, store)
        cases = {
            "POST /webhook/echo (never reaches the guard when served: FrontDoor answers first)": ("/webhook/echo", []),
            "GET /flow/x with a session cookie": ("/flow/x", [(b"cookie", f"flowboard_session={token}".encode())]),
            "GET /me with an API key": ("/me", [(b"x-api-key", key.encode())]),
            "GET /api/v1/flows with an API key (the API checks it)": ("/api/v1/flows", [(b"x-api-key", key.encode())]),
        }
        print("\n| path through the guard | µs per call, guard | µs, app alone | added µs |\n|---|---|---|---|")
        for name, (path, headers) in cases.items():
            scope = {"type": "http", "path": path, "method": "GET", "query_string": b"",
                     "headers": [(b"host", b"127.0.0.1:8080"), *headers]}
            results = []
            for app in (guard, inner):
                await app(dict(scope), None, None)  # warm: caches filled
                started = time.perf_counter()
                for _ in range(calls):
                    await app(dict(scope), None, None)
                results.append((time.perf_counter() - started) / calls * 1e6)
            print(f"| {name} | {results[0]:.2f} | {results[1]:.2f} | {results[0] - results[1]:.2f} |")
        store.close()

    asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--in-process", action="store_true", help="only the guard's own cost per call, in process")
    parser.add_argument("--before", type=Path, help="a tree of Flowboard before accounts")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--port", type=int, default=18600)
    args = parser.parse_args()
    if args.in_process or args.before is None:
        in_process()
        return
    setups = {"before": (args.before, False), "after (accounts on)": (ROOT, True),
              "after (single-user)": (ROOT, False)}
    prepared = {name: prepare(tree, accounts) for name, (tree, accounts) in setups.items()}
    hooks: dict[str, list[float]] = {name: [] for name in setups}
    api: dict[str, list[float]] = {name: [] for name in setups}
    for _ in range(args.rounds):
        for name, (tree, _accounts) in setups.items():
            data, key = prepared[name]
            proc = start(tree, data, args.port)
            try:
                base = f"http://127.0.0.1:{args.port}"
                wrk(base + "/webhook/echo", 2, "-s", str(POST_LUA))  # warm-up
                hooks[name].append(wrk(base + "/webhook/echo", args.duration, "-s", str(POST_LUA)))
                api[name].append(wrk(base + "/api/v1/nodes", args.duration, "-H", f"X-API-Key: {key}"))
            finally:
                proc.terminate()
                proc.wait(20)
    print("\n| server | POST /webhook/echo req/s | ratio | GET /api/v1/nodes req/s | ratio |\n|---|---|---|---|---|")
    base_hook, base_api = statistics.median(hooks["before"]), statistics.median(api["before"])
    for name in setups:
        h, a = statistics.median(hooks[name]), statistics.median(api[name])
        print(f"| {name} | {h:,.0f} | {h / base_hook:.2f} | {a:,.0f} | {a / base_api:.2f} |")
    print(f"\nmedians of {args.rounds} rounds x {args.duration} s, wrk -t2 -c32; every sample: {hooks} {api}")


if __name__ == "__main__":
    main()

"""CPU per webhook call in this process, without an HTTP server: the webhook handler (the server's front door for
`/webhook/…`), the engine and, with recording on, the SQLite recorder, driven by `conns` callers at a time.

    python bench/webhook.py                      # echo and chain10, recording off and on, 3 x 3 s each
    python bench/webhook.py --flows echo --modes on --profile /tmp/echo.prof   # cProfile (CPU clock) as well
    python bench/webhook.py --baseline /tmp/fb-before   # A/B: the same in another checkout, rounds alternating
    python bench/webhook.py --instructions --baseline /tmp/fb-before   # A/B in instructions (valgrind), any load

Each call gets a fresh ASGI scope (the headers wrk sends) and the body of the peer benchmark, in a task of its own (as
the HTTP server does: work a call leaves to the event loop is done, and counted, while the others go on), and the
answer is checked. (It drives the ASGI front door, uvicorn's way in; granian serves webhooks on RSGI,
`WebhookApp.serve_rsgi`, which reads the same call with a few µs less: the rest of the path is the same.)
The figure is this process's CPU time (`time.process_time`, which other processes do not add to) per call: the part of
`bench/peer.py`'s "CPU ms per 1,000 requests" that is Flowboard's own, with the HTTP server's share left out.

On a shared machine that figure still moves by 20% from one round to the next (the other processes share the cores'
caches). `--instructions` counts the instructions a call takes instead, under valgrind (`cachegrind`, no cache
simulation), which no other process changes: each checkout, flow and mode runs a fixed number of calls (8 callers)
once with N and once with 3N calls, and the difference over 2N is the figure (start-up and warm-up cancel out).
With a fixed PYTHONHASHSEED it repeats within about 0.5%; it counts work, not time, so a change that only moves
memory or cache behaviour does not show (a reference cycle per run does: the collector's work is instructions).
Slow (about a minute per checkout, flow and mode), so it runs one process at a time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BODY = b'{"hello":"world","n":1,"items":[1,2,3]}'
HEADERS = [(b"host", b"127.0.0.1:8000"), (b"content-type", b"application/json"),
           (b"content-length", str(len(BODY)).encode())]


def _thread_cpu() -> float:
    """CPU seconds of this thread (the event loop's) alone."""
    return time.clock_gettime(time.CLOCK_THREAD_CPUTIME_ID)


def settle_collector() -> None:
    """What `flowboard serve` does with the garbage collector once started (or what a checkout from before
    `settle_collector` did: a collection and `gc.freeze`)."""
    import gc

    from flowboard import server

    settle = getattr(server, "settle_collector", None)
    if settle is None:
        gc.collect()
        gc.freeze()
    else:
        settle()


def _front_door(flow: str, record: bool) -> tuple[Any, Callable[[], Awaitable[None]]]:
    """A Flowboard on a fresh folder with `flow` active, and one webhook call through its front door (a task per call,
    as the HTTP server makes), which fails unless answered 200."""
    from flowboard.api.webhooks import FrontDoor
    from flowboard.services import Flowboard

    data = Path(tempfile.mkdtemp(prefix="flowboard-webhook-bench-"))
    fb = Flowboard(data_dir=data, record=record)
    fb.import_flow((HERE / "flows" / f"{flow}.json").read_text())
    fb.activate(f"bench-{flow}")
    fb.start_triggers()
    door = FrontDoor(None, fb)
    path = f"/webhook/{flow}"

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": BODY, "more_body": False}

    async def call() -> None:
        answer: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            answer.append(message)

        scope = {"type": "http", "method": "POST", "path": path, "query_string": b"", "headers": list(HEADERS)}
        await asyncio.ensure_future(door(scope, receive, send))
        if answer[0]["status"] != 200:
            raise RuntimeError(f"{flow}: {answer[0]['status']} {answer[1]['body'][:200]!r}")

    return fb, call


async def measure(flow: str, record: bool, seconds: float, rounds: int, conns: int, profile: str | None
                  ) -> list[tuple[float, float]]:
    fb, call = _front_door(flow, record)
    calls = 0

    async def client(stop: float) -> None:
        nonlocal calls
        while time.perf_counter() < stop:
            await call()
            calls += 1

    async def load(duration: float) -> None:
        stop = time.perf_counter() + duration
        await asyncio.gather(*[client(stop) for _ in range(conns)])

    settle_collector()  # as `flowboard serve` does after start-up
    await load(1.0)  # warm-up
    samples = []
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile(_thread_cpu)
    for _ in range(rounds):
        calls = 0
        used, loop_used = time.process_time(), _thread_cpu()
        if profiler is not None:
            profiler.enable()
        await load(seconds)
        if profiler is not None:
            profiler.disable()
        samples.append(((time.process_time() - used) / calls * 1e6, (_thread_cpu() - loop_used) / calls * 1e6))
    if profiler is not None and profile:
        profiler.dump_stats(profile)
    await fb.aclose()
    return samples


async def calls(flow: str, record: bool, count: int, conns: int) -> None:
    """`count` calls by `conns` callers after a warm-up, for counting instructions (no clock)."""
    fb, call = _front_door(flow, record)

    async def client(n: int) -> None:
        for _ in range(n):
            await call()

    await asyncio.gather(*[client(10) for _ in range(conns)])  # warm-up
    settle_collector()
    await asyncio.gather(*[client(count // conns) for _ in range(conns)])
    await fb.aclose()


def child(args: argparse.Namespace) -> None:
    import uvloop

    if args.calls:
        uvloop.run(calls(args.flows, args.modes == "on", args.calls, args.conns))
        return
    samples = uvloop.run(measure(args.flows, args.modes == "on", args.seconds, args.rounds, args.conns,
                                 args.profile))
    print(json.dumps(samples))


def instructions(checkout: Path, flow: str, mode: str, calls: int) -> float:
    """Instructions per call (see the module's docstring): 3N calls minus N calls, over 2N."""
    venv = checkout / ".venv" / "bin" / "python"
    python = str(venv) if venv.exists() else sys.executable
    env = {**os.environ, "PYTHONPATH": str(checkout), "PYTHONHASHSEED": "0"}
    counts = []
    for n in (calls, 3 * calls):
        command = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null", python,
                   str(HERE / "webhook.py"), "--child", "--flows", flow, "--modes", mode, "--calls", str(n),
                   "--conns", "8"]
        done = subprocess.run(command, env=env, cwd=checkout, capture_output=True, text=True)
        found = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
        if done.returncode or found is None:
            raise RuntimeError(f"{flow} ({mode}) in {checkout} under valgrind failed:\n{done.stderr[-3000:]}")
        counts.append(int(found.group(1).replace(",", "")))
    return (counts[1] - counts[0]) / (2 * calls)


def run(checkout: Path, flow: str, mode: str, args: argparse.Namespace) -> list[tuple[float, float]]:
    venv = checkout / ".venv" / "bin" / "python"
    python = str(venv) if venv.exists() else sys.executable
    command = [python, str(HERE / "webhook.py"), "--child", "--flows", flow, "--modes", mode, "--seconds",
               str(args.seconds), "--rounds", "1", "--conns", str(args.conns)]
    if args.profile:
        command += ["--profile", f"{args.profile}.{flow}.{mode}"]
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    done = subprocess.run(command, env=env, cwd=checkout, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{flow} ({mode}) in {checkout} failed:\n{done.stderr[-3000:]}")
    out = done.stdout
    return [tuple(x) for x in json.loads(out.strip().splitlines()[-1])]


def _list(samples: list[tuple[float, float]]) -> str:
    return ", ".join(f"{x[0]:.0f}" for x in samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flows", default="echo,chain10")
    parser.add_argument("--modes", default="off,on")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--conns", type=int, default=32)
    parser.add_argument("--profile", help="write cProfile stats (CPU clock) to this path (+ .flow.mode)")
    parser.add_argument("--baseline", type=Path, help="another checkout to alternate with")
    parser.add_argument("--instructions", action="store_true",
                        help="count instructions per call under valgrind instead of timing (load-independent)")
    parser.add_argument("--calls", type=int, default=0, help="calls per count with --instructions (default 160)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    checkouts = {"this": HERE.parent}
    if args.baseline:
        checkouts["baseline"] = args.baseline.resolve()
    if args.instructions:
        print(f"\n# thousands of instructions per webhook call in process (valgrind; {args.calls or 160} and "
              f"{3 * (args.calls or 160)} calls, 8 callers)\n")
        print("| flow | recording | " + " | ".join(checkouts) + (" | this / baseline |" if args.baseline else ""))
        print("|---|---|" + "---|" * (len(checkouts) + (1 if args.baseline else 0)))
        for flow in args.flows.split(","):
            for mode in args.modes.split(","):
                counted = {name: instructions(checkout, flow, mode, args.calls or 160)
                           for name, checkout in checkouts.items()}
                ratio = f" | {counted['this'] / counted['baseline']:.3f}x" if args.baseline else ""
                print(f"| {flow} | {mode} | " + " | ".join(f"{counted[n] / 1000:,.1f}k" for n in checkouts)
                      + f"{ratio} |", flush=True)
        return
    samples: dict[tuple[str, str, str], list[tuple[float, float]]] = {}
    load = [os.getloadavg()[0]]
    for _ in range(args.rounds):  # each round a fresh process per checkout, flow and mode, alternating
        for flow in args.flows.split(","):
            for mode in args.modes.split(","):
                for name, checkout in checkouts.items():
                    samples.setdefault((name, flow, mode), []).extend(run(checkout, flow, mode, args))
        load.append(os.getloadavg()[0])
    print(f"\n# CPU µs per webhook call in process, all threads (the event loop's thread alone) ({args.rounds} x "
          f"{args.seconds:g} s, {args.conns} callers; medians; load average {min(load):.1f}-{max(load):.1f})\n")
    print("| flow | recording | " + " | ".join(checkouts) + (" | this / baseline |" if args.baseline else ""))
    print("|---|---|" + "---|" * (len(checkouts) + (1 if args.baseline else 0)))
    for flow in args.flows.split(","):
        for mode in args.modes.split(","):
            medians = {name: (statistics.median(x[0] for x in samples[(name, flow, mode)]),
                              statistics.median(x[1] for x in samples[(name, flow, mode)])) for name in checkouts}
            cells = " | ".join(f"{medians[n][0]:.1f} ({medians[n][1]:.1f}) [{_list(samples[(n, flow, mode)])}]"
                               for n in checkouts)
            ratio = ""
            if args.baseline:
                ratio = f" | {medians['this'][0] / medians['baseline'][0]:.2f}x " \
                        f"({medians['this'][1] / medians['baseline'][1]:.2f}x)"
            print(f"| {flow} | {mode} | {cells}{ratio} |")


if __name__ == "__main__":
    main()

"""Two `flowboard serve` side by side under `wrk`: CPU per request, the event loop's share of it, and req/s.

    python bench/servers.py --baseline /tmp/fb-before            # this checkout against another (a git worktree)
    python bench/servers.py --baseline-env FLOWBOARD_SERVER=uvicorn   # the same checkout, one setting changed
    python bench/servers.py --flow chain10 --record --rounds 8

Both servers start together on fresh data folders holding the flow (bench/flows/NAME.json, active), are warmed up,
then take `wrk -t2 -c32` rounds in turn (the order flips every round), so the machine's load weighs on both alike.
Per round and server: the CPU time of all its threads and of its event loop's thread (the main one, from
/proc/PID/task), divided by the requests answered, and that thread's busy share of the round. Prints medians and the
ratios. The loop's thread runs every line of Python, so its µs per request is what limits the rate when it is near
100% busy; on a shared machine CPU per request moves less than req/s. `wrk` comes with ../shared/peers/setup.sh.
Without --baseline or --baseline-env, one server is measured.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from startup import BODY, _cpu_s, _free_port, _post, _python, _stop

HERE = Path(__file__).resolve().parent


class Server:
    def __init__(self, name: str, checkout: Path, flow: str, record: bool, extra_env: dict[str, str]):
        self.name = name
        python = _python(checkout)
        data = Path(tempfile.mkdtemp(prefix=f"flowboard-servers-{name}-"))
        env = {**os.environ, "FLOWBOARD_DATA_DIR": str(data), "PYTHONPATH": str(checkout), **extra_env}
        for args in (["import", str(HERE / "flows" / f"{flow}.json")], ["activate", f"bench-{flow}"]):
            subprocess.run([python, "-m", "flowboard", *args], env=env, cwd=checkout, check=True, capture_output=True)
        port = _free_port()
        command = [python, "-m", "flowboard", "serve", "--no-browser", "--port", str(port), "--data-dir", str(data)]
        if not record:
            command.append("--no-record")
        self.url = f"http://127.0.0.1:{port}/webhook/{flow}"
        self.process = subprocess.Popen(command, env=env, cwd=checkout, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, start_new_session=True)
        self.rounds: list[tuple[float, float, float, float]] = []  # (all µs/req, loop µs/req, loop busy, req/s)

    def wait_ready(self) -> None:
        start = time.perf_counter()
        while not _post(self.url):
            if self.process.poll() is not None or time.perf_counter() - start > 120:
                raise RuntimeError(f"server {self.name} did not answer {self.url}")
            time.sleep(0.05)

    def cpu(self) -> tuple[float, float]:
        """CPU seconds of the whole process and of its main thread (the event loop's)."""
        pid = self.process.pid
        return _cpu_s(pid), _cpu_s(pid, thread=pid)

    def round(self, script: Path, seconds: float, keep: bool = True) -> None:
        (all0, loop0), t0 = self.cpu(), time.perf_counter()
        out = subprocess.run(["wrk", "-t2", "-c32", f"-d{seconds:g}s", "-s", str(script), self.url],
                             capture_output=True, text=True, check=True).stdout
        (all1, loop1), wall = self.cpu(), time.perf_counter() - t0
        answered = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
        rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
        if re.search(r"Non-2xx|Socket errors", out):
            raise RuntimeError(f"server {self.name} answered with errors:\n{out}")
        if keep:
            self.rounds.append(((all1 - all0) / answered * 1e6, (loop1 - loop0) / answered * 1e6,
                                (loop1 - loop0) / wall, rate))

    def medians(self) -> tuple[float, float, float, float]:
        return tuple(statistics.median(r[i] for r in self.rounds) for i in range(4))  # type: ignore[return-value]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flow", default="echo",
                        help="echo or chain10 (bench/flows/NAME.json; fanout needs bench/peer.py's slow server)")
    parser.add_argument("--record", action="store_true", help="record every run (default: --no-record)")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--baseline", type=Path, help="another checkout to run beside this one")
    parser.add_argument("--baseline-env", action="append", default=[], metavar="NAME=VALUE",
                        help="a setting for the baseline server only (with no --baseline: this checkout again)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: bash ../shared/peers/setup.sh installs it")
    knobs = dict(pair.split("=", 1) for pair in args.baseline_env)
    servers = [Server("this", HERE.parent, args.flow, args.record, {})]
    if args.baseline or knobs:
        servers.append(Server("baseline", (args.baseline or HERE.parent).resolve(), args.flow, args.record, knobs))
    script = Path(tempfile.mkdtemp(prefix="flowboard-servers-")) / "post.lua"
    script.write_text(f"wrk.method = 'POST'\nwrk.body = '{BODY.decode()}'\n"
                      "wrk.headers['Content-Type'] = 'application/json'\n")
    try:
        for server in servers:
            server.wait_ready()
        for server in servers:
            server.round(script, 2, keep=False)  # warm-up
        for i in range(args.rounds):
            for server in servers if i % 2 == 0 else servers[::-1]:
                server.round(script, args.seconds)
    finally:
        for server in servers:
            _stop(server.process)
    mode = "on" if args.record else "off"
    print(f"# {args.flow}, recording {mode}: wrk -t2 -c32, {args.rounds} x {args.seconds:g} s per server, "
          f"alternating; medians (load average {os.getloadavg()[0]:.1f})")
    for server in servers:
        cpu, loop, busy, rate = server.medians()
        print(f"{server.name}: {cpu:.1f} µs of CPU per request ({', '.join(f'{r[0]:.1f}' for r in server.rounds)}), "
              f"the event loop's thread {loop:.1f} µs ({busy:.0%} busy), {rate:,.0f} req/s "
              f"({', '.join(f'{r[3]:,.0f}' for r in server.rounds)})")
    if len(servers) == 2:
        (cpu, loop, _, rate), (bcpu, bloop, _, brate) = servers[0].medians(), servers[1].medians()
        print(f"this / baseline: CPU per request {cpu / bcpu:.3f}x, the loop's thread {loop / bloop:.3f}x, "
              f"req/s {rate / brate:.3f}x")


if __name__ == "__main__":
    main()

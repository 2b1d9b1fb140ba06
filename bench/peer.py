"""Flowboard against Node-RED, side by side, with the shared harness (../shared/peers/bench.py).

    python bench/peer.py            # the harness's defaults: 3 startups, 3 x 15 s per flow (about 10 minutes)
    python bench/peer.py --quick    # 1 startup, 1 x 5 s per flow, for iteration
    python bench/peer.py --only flowboard-off --flows echo
    python bench/peer.py --cpu-only # only the CPU per request (what a loaded machine does not change much)

Imports bench/flows/{echo,chain10,fanout}.json (the Node-RED flows of ../shared/peers/nodered/gen_flows.py, built
from Flowboard nodes) into a fresh data folder per mode, activates them, then runs the harness for Node-RED, Flowboard
with run recording off (`--no-record`) and Flowboard recording every run (the default), and prints one table with the
ratios to Node-RED. Machines are shared and noisy: only ratios measured in the same session mean anything.

Beside req/s, each server's CPU time per request: the servers are started again, all at once, left to settle, warmed
up, then per round the utime + stime of a server's process tree (/proc/PID/stat) is read before and after a `wrk`
round against it (same body, same -t/-c as the harness) and divided by the requests answered; the rounds alternate
between the servers, so the machine's load weighs on each alike. Other processes on the machine do not add to
it, so it is the figure to compare on a shared machine: "CPU ms per 1,000 requests" and its ratio to Node-RED's (below
1 is less CPU than Node-RED).

Last, the latency at the same load: every server is offered the same request rate (half the slowest one's req/s in
the CPU rounds; `--paced-share`) by 128 callers that each wait a random time between answer and next request
(bench/paced.lua), rounds alternating, and the p50/p99 of each are printed. The verdict's p99 check is this one: the
harness's p99 comes from 32 callers sending again the moment they are answered, where a server answering fewer
requests per second shows a longer wait whatever its tail (Little's law: p50 ~ 32 / req/s), so it says again what
req/s says. The harness's p99 is still in the table.
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import json
import os
import shlex
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SHARED = Path(os.environ.get("FLOWBOARD_PEERS_SRC", HERE.parent.parent / "shared" / "peers"))  # ../shared/peers
if not SHARED.is_dir():
    SHARED = Path("/work/shared/peers")
PEERS = Path(os.environ.get("PEERS_DIR", Path.home() / ".cache" / "flowboard-peers"))
FLOWS = ("echo", "chain10", "fanout")
QUICK = ["--duration", "5", "--repeats", "1", "--warmup", "2", "--startup-repeats", "1", "--idle-wait", "1"]
TICK = os.sysconf("SC_CLK_TCK")
PACED_SHARE = 0.5  # the latency at one load: this share of the slowest server's req/s, offered to every server
PACED_CONNS = 128  # callers of a paced round: many, each mostly waiting, so a server's latency hardly moves the rate


def setup() -> None:
    """Install Node-RED, Node and wrk with the shared script (once; it is idempotent)."""
    if not (PEERS / "bench.py").exists() or not (PEERS / "nodered" / "node_modules" / "node-red").is_dir():
        print("installing the peers (a few minutes the first time) ...", flush=True)
        subprocess.run(["bash", str(SHARED / "setup.sh")], check=True)
    else:  # keep the harness in step with the shared copy
        subprocess.run(["cp", str(SHARED / "bench.py"), str(PEERS / "bench.py")], check=True)


def prepare(data: Path, flows: list[str]) -> None:
    """A fresh data folder with the benchmark flows imported and active, through the real command line."""
    env = {**os.environ, "FLOWBOARD_DATA_DIR": str(data)}
    for name in flows:
        for args in (["import", str(HERE / "flows" / f"{name}.json")], ["activate", f"bench-{name}"]):
            subprocess.run([sys.executable, "-m", "flowboard", *args], env=env, check=True, capture_output=True)


def harness(peer: str, extra: list[str], tag: str) -> dict[str, Any]:
    """Run bench.py and return its result file."""
    before = set(glob.glob(str(PEERS / "results" / "*.json")))
    subprocess.run([sys.executable, str(PEERS / "bench.py"), "--peer", peer, "--tag", tag, *extra], cwd=PEERS,
                   check=True)
    new = sorted(set(glob.glob(str(PEERS / "results" / "*.json"))) - before)
    if not new:
        raise RuntimeError(f"bench.py wrote no result for {peer}")
    return json.loads(Path(new[-1]).read_text())


def flowboard_command(mode: str, port: int, data: Path) -> list[str]:
    command = [sys.executable, "-m", "flowboard", "serve", "--no-browser", "--port", str(port), "--data-dir", str(data)]
    if mode == "off":
        command.append("--no-record")
    return command


def flowboard(mode: str, flows: list[str], options: list[str], port: int) -> dict[str, Any]:
    data = Path(tempfile.mkdtemp(prefix=f"flowboard-bench-{mode}-"))
    prepare(data, flows)
    command = flowboard_command(mode, port, data)
    extra = ["--cmd", shlex.join(command), "--base", f"http://127.0.0.1:{port}", "--ready", flows[0], *options]
    for name in flows:
        extra += ["--flow", f"{name}=/webhook/{name}"]
    result = harness(f"flowboard-{mode}", extra, tag=mode)
    result["recorded_runs"] = recorded(data)
    return result


def interpreter() -> str:
    """Which Python ran Flowboard: the same code took 0.89-0.98x the CPU per request on Debian's python3.11 (built
    with profile-guided and link-time optimisation, libpython linked in) against a pyenv build with pyenv's default
    options (neither), so figures from different interpreters do not compare (docs/engine.md, the eighth session)."""
    return f"Python {sys.version.split()[0]} ({sys.executable})"


# -- CPU time per request -------------------------------------------------------------------------------------------


def _harness_module() -> Any:
    """The shared harness as a module, for its server start/stop, readiness probe, wrk runner and Node-RED command."""
    spec = importlib.util.spec_from_file_location("peer_harness", PEERS / "bench.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def tree_cpu_s(root: int, h: Any) -> float:
    """utime + stime of a process and its children now alive, in seconds."""
    total = 0
    for pid in h.tree_pids(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / TICK


def settle(root: int, h: Any, limit: float = 90.0) -> None:
    """Wait until the server is quiet (under 5% of a core over half a second): a server that imports its editor in
    the background after the first answer (Flowboard) would add that to the first round."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        before = tree_cpu_s(root, h)
        time.sleep(0.5)
        if tree_cpu_s(root, h) - before < 0.025:
            return


def paced(url: str, rate: float, seconds: int, threads: int = 2, conns: int = PACED_CONNS) -> dict[str, Any]:
    """One `wrk` round offering about `rate` requests per second (bench/paced.lua: each connection waits a random
    time of mean conns / rate between its answer and its next request), whatever the server's speed."""
    mean_ms = conns * 1000 / rate
    command = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds}s", "--timeout", "10s", "-s", str(HERE / "paced.lua"),
               url, "--", f"{mean_ms:.3f}"]
    out = subprocess.run(command, capture_output=True, text=True).stdout
    found = [line for line in out.splitlines() if line.startswith("WRKJSON ")]
    if not found:
        raise RuntimeError("wrk failed:\n" + out)
    return json.loads(found[0].removeprefix("WRKJSON "))


def cpu_per_request(peers: list[str], flows: list[str], rounds: int, seconds: int, port: int,
                    threads: int = 2, conns: int = 32,
                    share: float = PACED_SHARE) -> dict[str, dict[str, dict[str, Any]]]:
    """Per peer and flow: the median over `rounds` wrk rounds of the server tree's CPU ms per 1,000 answered requests.
    Every server runs at once and the rounds alternate between them (Node-RED, Flowboard off, Flowboard on, Node-RED,
    ...), so the other engineers' load weighs on each the same.

    Then the latency at the same load (`paced`): `rounds` rounds per server offering each the same rate, `share` of
    the slowest server's req/s in the rounds before (so every server can carry it), rounds alternating as well. The
    harness's p99 is measured at full speed with 32 callers that send again as soon as they are answered: a server
    answering half as many requests shows twice the latency there whatever its tail (Little's law), so only this
    one compares latency at one load. (0 `share`: not measured.)"""
    h = _harness_module()
    servers: dict[str, tuple[list[str], str, dict[str, str]]] = {}  # peer -> (command, base URL, flow paths)
    for i, peer in enumerate(peers):
        if peer == "nodered":
            cfg = h.PEERS["nodered"]
            servers[peer] = (cfg["cmd"], cfg["base"], {name: cfg["flows"][name] for name in flows})
        else:
            data = Path(tempfile.mkdtemp(prefix=f"flowboard-cpu-{peer}-"))
            prepare(data, flows)
            servers[peer] = (flowboard_command(peer.removeprefix("flowboard-"), port + i, data),
                             f"http://127.0.0.1:{port + i}", {name: f"/webhook/{name}" for name in flows})
    for peer, (_, base, _) in servers.items():
        taken = urllib.parse.urlsplit(base).port
        if taken and not _port_free(taken):
            raise RuntimeError(f"port {taken} is in use (another benchmark?): {peer}'s CPU would be measured on the "
                               "wrong server")
    options = argparse.Namespace(threads=threads, conns=conns)
    slow = h.start([h.NODE, "common/slow_server.js", "8099", "50"], {}, subprocess.DEVNULL) \
        if "fanout" in flows else None
    running: dict[str, Any] = {}
    out: dict[str, dict[str, dict[str, Any]]] = {peer: {} for peer in peers}
    try:
        for peer, (command, _base, _paths) in servers.items():
            running[peer] = h.start(command, {}, subprocess.DEVNULL)
        for peer, (_, base, paths) in servers.items():
            if h.wait_ready(base + paths[flows[0]], 180) is None:
                raise RuntimeError(f"{peer} never answered {paths[flows[0]]}")
        for peer in peers:
            settle(running[peer].pid, h)
        for name in flows:
            samples: dict[str, list[float]] = {peer: [] for peer in peers}
            speeds: dict[str, list[float]] = {peer: [] for peer in peers}
            for _, base, paths in servers.values():
                h.wrk(base + paths[name], options, 2)  # warm-up
            for _ in range(rounds):
                for peer, (_, base, paths) in servers.items():
                    pid = running[peer].pid
                    before = tree_cpu_s(pid, h)
                    result = h.wrk(base + paths[name], options, seconds)
                    used = tree_cpu_s(pid, h) - before
                    answered = result["requests"] - result["err_status"] - result["err_timeout"]
                    if answered > 0:
                        samples[peer].append(used / answered * 1e6)  # ms per 1,000 requests
                        speeds[peer].append(answered / result["duration_s"])
            for peer in peers:
                got = samples[peer]
                out[peer][name] = {"cpu_ms_per_1000": round(statistics.median(got), 2) if got else None,
                                   "samples": [round(x, 2) for x in got]}
                print(f"{peer} {name}: CPU ms per 1,000 requests {out[peer][name]['samples']}", flush=True)
            if share and all(speeds.values()):
                rate = share * min(statistics.median(got) for got in speeds.values())
                rounds_at: dict[str, list[dict[str, Any]]] = {peer: [] for peer in peers}
                for _ in range(rounds):
                    for peer, (_, base, paths) in servers.items():
                        rounds_at[peer].append(paced(base + paths[name], rate, seconds, threads))
                for peer in peers:
                    got_at = rounds_at[peer]
                    out[peer][name]["paced"] = {
                        "rate": round(rate), "rps": round(statistics.median(r["rps"] for r in got_at)),
                        "p50_ms": round(statistics.median(r["p50_ms"] for r in got_at), 3),
                        "p99_ms": round(statistics.median(r["p99_ms"] for r in got_at), 3),
                        "p99_samples": [round(r["p99_ms"], 2) for r in got_at],
                        "errors": sum(r["err_status"] + r["err_timeout"] + r["err_read"] for r in got_at)}
                    print(f"{peer} {name} at {rate:,.0f} req/s offered: p99 ms "
                          f"{out[peer][name]['paced']['p99_samples']}", flush=True)
    finally:
        for server in running.values():
            h.stop(server)
        h.stop(slow)
    return out


def recorded(data: Path) -> dict[str, int]:
    with sqlite3.connect(data / "flowboard.db") as db:
        return dict(db.execute("SELECT flow_id, count(*) FROM runs GROUP BY flow_id").fetchall())


def table(results: dict[str, dict[str, Any]], flows: list[str]) -> str:
    base = results.get("nodered", {}).get("flows", {})
    lines = ["| flow | peer | req/s | p50 ms | p99 ms | RSS peak MB | vs Node-RED | CPU ms per 1,000 requests | "
             "CPU vs Node-RED |", "|---|---|---|---|---|---|---|---|---|"]
    for name in flows:
        ref = base.get(name, {}).get("median", {}).get("rps")
        ref_cpu = results.get("nodered", {}).get("cpu", {}).get(name, {}).get("cpu_ms_per_1000")
        for peer, result in results.items():
            cpu = result.get("cpu", {}).get(name, {}).get("cpu_ms_per_1000")
            cpu_cells = f"{cpu:,.1f} | {cpu / ref_cpu:.2f}x" if cpu and ref_cpu else (f"{cpu:,.1f} | -" if cpu else
                                                                                         "- | -")
            m = result.get("flows", {}).get(name, {}).get("median")
            if not m:
                lines.append(f"| {name} | {peer} | {'-' if 'flows' not in result else 'failed'} | | | | | "
                             f"{cpu_cells} |")
                continue
            ratio = f"{m['rps'] / ref:.2f}x" if ref else "-"
            lines.append(f"| {name} | {peer} | {m['rps']:,.0f} | {m['p50_ms']:.2f} | {m['p99_ms']:.2f} | "
                         f"{m['rss_peak_mb']:.0f} | {ratio} | {cpu_cells} |")
    paced_lines = []
    for name in flows:
        ref_at = results.get("nodered", {}).get("cpu", {}).get(name, {}).get("paced")
        for peer, result in results.items():
            at = result.get("cpu", {}).get(name, {}).get("paced")
            if at:
                versus = f"{at['p99_ms'] / ref_at['p99_ms']:.2f}x" if ref_at and ref_at["p99_ms"] else "-"
                paced_lines.append(f"| {name} | {at['rate']:,} | {peer} | {at['rps']:,} | {at['p50_ms']:.2f} | "
                                   f"{at['p99_ms']:.2f} | {versus} |")
    if paced_lines:
        lines += ["", "Latency at the same load (every server offered the same req/s, a share of the slowest one's; "
                  "medians of the rounds):", "",
                  "| flow | offered req/s | peer | answered req/s | p50 ms | p99 ms | p99 vs Node-RED |",
                  "|---|---|---|---|---|---|---|", *paced_lines]
    idle = ", ".join(f"{peer} {r.get('idle_rss_mb', '?')} MB" for peer, r in results.items() if "flows" in r)
    startup = ", ".join(f"{peer} {sorted(r['startup_s'])[len(r['startup_s']) // 2]:.2f} s" for peer, r in
                        results.items() if r.get("startup_s"))
    return "\n".join([*lines, "", f"idle RSS: {idle}", f"startup (median): {startup}"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short runs for iteration (not for reporting)")
    parser.add_argument("--flows", default=",".join(FLOWS), help="comma list of flows (default: all three)")
    parser.add_argument("--only", default="nodered,flowboard-off,flowboard-on", help="comma list of peers to run")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--harness", default="", help="more options for bench.py, e.g. '--duration 10'")
    parser.add_argument("--cpu-rounds", type=int, default=0, help="wrk rounds of the CPU measurement (default 3, "
                        "quick 1)")
    parser.add_argument("--cpu-seconds", type=int, default=0, help="seconds per CPU round (default 10, quick 5)")
    # the CPU phase's Flowboard servers listen on --port + 10, + 11, ...
    parser.add_argument("--cpu-only", action="store_true", help="only the CPU per request, no harness run")
    parser.add_argument("--no-cpu", action="store_true", help="only the harness run")
    parser.add_argument("--paced-share", type=float, default=PACED_SHARE, help="latency at one load: the rate offered "
                        "to every server, as a share of the slowest one's req/s (default 0.5; 0: not measured)")
    args = parser.parse_args()
    flows = args.flows.split(",")
    options = (QUICK if args.quick else []) + shlex.split(args.harness)
    setup()
    results: dict[str, dict[str, Any]] = {}
    started = time.monotonic()
    rounds = args.cpu_rounds or (1 if args.quick else 3)
    seconds = args.cpu_seconds or (5 if args.quick else 10)
    load = [os.getloadavg()[0]]
    peers = args.only.split(",")
    for peer in peers:
        results[peer] = {}
        if not args.cpu_only:
            if peer == "nodered":
                results[peer] = harness("nodered", ["--flows", ",".join(flows), *options], tag="peer")
            else:
                results[peer] = flowboard(peer.removeprefix("flowboard-"), flows, options, args.port)
        load.append(os.getloadavg()[0])
    if not args.no_cpu:  # all servers at once, rounds alternating
        for peer, cpu in cpu_per_request(peers, flows, rounds, seconds, args.port + 10,
                                         share=args.paced_share).items():
            results[peer]["cpu"] = cpu
        load.append(os.getloadavg()[0])
    took = time.monotonic() - started
    print(f"\n# Flowboard vs Node-RED ({took:.0f} s; medians; ratios are req/s and CPU per request over Node-RED's; "
          f"load average {min(load):.1f}-{max(load):.1f})\n")
    print(f"Flowboard ran on {interpreter()}\n")
    print(table(results, flows))
    if "recorded_runs" in results.get("flowboard-on", {}):
        print(f"recorded runs with recording on (all calls, warm-up and startup probes included): "
              f"{results['flowboard-on']['recorded_runs']}")
    print(cpu_verdict(results, flows))
    print(verdict(results, flows))


TARGETS = {"flowboard-off": 1.2, "flowboard-on": 0.8}  # req/s over Node-RED's, per flow (issue 9)
IDLE_RSS_MB = 120


def verdict(results: dict[str, dict[str, Any]], flows: list[str]) -> str:
    """One line: PASS when every target of issue 9 that this session measured holds, else what missed."""
    ref = results.get("nodered")
    if ref is None:
        return "verdict: - (Node-RED was not measured in this session: ratios need it side by side)"
    missed, checked = [], 0
    for peer, want in TARGETS.items():
        result = results.get(peer)
        if result is None:
            continue
        for name in flows:
            base = ref.get("flows", {}).get(name, {}).get("median")
            got = result.get("flows", {}).get(name, {}).get("median")
            if not base:
                continue
            checked += 2
            if not got:
                missed.append(f"{peer} {name} failed")
                continue
            ratio = got["rps"] / base["rps"]
            if ratio < want:
                missed.append(f"{peer} {name} {ratio:.2f}x < {want}x")
            mine_at = result.get("cpu", {}).get(name, {}).get("paced")
            theirs_at = ref.get("cpu", {}).get(name, {}).get("paced")
            if mine_at and theirs_at:  # p99 at one load (see cpu_per_request)
                if mine_at["errors"]:
                    missed.append(f"{peer} {name}: {mine_at['errors']} calls failed at {theirs_at['rate']:,} req/s")
                elif mine_at["p99_ms"] > theirs_at["p99_ms"]:
                    missed.append(f"{peer} {name} p99 at {theirs_at['rate']:,} req/s {mine_at['p99_ms']:.1f} > "
                                  f"{theirs_at['p99_ms']:.1f} ms")
            elif got["p99_ms"] > base["p99_ms"]:  # no paced rounds: the harness's, at full speed
                missed.append(f"{peer} {name} p99 at full speed {got['p99_ms']:.1f} > {base['p99_ms']:.1f} ms")
        if result.get("startup_s") and ref.get("startup_s"):
            checked += 1
            mine, theirs = statistics.median(result["startup_s"]), statistics.median(ref["startup_s"])
            if mine >= theirs:
                missed.append(f"{peer} startup {mine:.2f} s >= {theirs:.2f} s")
        if result.get("idle_rss_mb") is not None:
            checked += 1
            if result["idle_rss_mb"] > IDLE_RSS_MB:
                missed.append(f"{peer} idle RSS {result['idle_rss_mb']} MB > {IDLE_RSS_MB} MB")
    if not checked:
        return "verdict: - (no Flowboard req/s was measured: the targets are in req/s)"
    return "verdict: PASS (all targets of issue 9)" if not missed else f"verdict: FAIL ({len(missed)} of {checked} " \
        f"checks missed): " + "; ".join(missed)


def cpu_verdict(results: dict[str, dict[str, Any]], flows: list[str]) -> str:
    """One line on the CPU per request: the req/s targets read as CPU ratios (a server saturating a shared machine
    answers about in inverse proportion to its CPU per request: >= 1.2x Node-RED's req/s is <= 1/1.2 of its CPU)."""
    ref = results.get("nodered", {}).get("cpu")
    if not ref:
        return "CPU verdict: - (Node-RED's CPU per request was not measured in this session)"
    missed, checked = [], 0
    for peer, want in TARGETS.items():
        mine = results.get(peer, {}).get("cpu")
        if not mine:
            continue
        for name in flows:
            base, got = ref.get(name, {}).get("cpu_ms_per_1000"), mine.get(name, {}).get("cpu_ms_per_1000")
            if not base or not got:
                continue
            checked += 1
            if got / base > 1 / want:
                missed.append(f"{peer} {name} {got / base:.2f}x > {1 / want:.2f}x")
    if not checked:
        return "CPU verdict: - (no Flowboard CPU per request was measured)"
    return "CPU verdict: PASS" if not missed else f"CPU verdict: FAIL ({len(missed)} of {checked} over the CPU the " \
        f"req/s targets allow): " + "; ".join(missed)


if __name__ == "__main__":
    main()

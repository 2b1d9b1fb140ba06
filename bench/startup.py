"""Start-up and idle memory of `flowboard serve`, this checkout against another one, rounds alternating.

    python bench/startup.py                            # 7 rounds of this checkout
    python bench/startup.py --baseline /tmp/fb-before  # A/B: `git worktree add /tmp/fb-before <commit>` first

Per round: spawn `flowboard serve` on a fresh data folder holding the echo flow (bench/flows/echo.json), time spawn to
the first 200 of POST /webhook/echo (as the Node-RED harness does) and read the CPU the server spent until then
(utime + stime of all its threads, from /proc: the figure the other processes on a shared machine add least to),
then load the editor page once (GET /flow/bench-echo) and, after a second of quiet, read the server's RSS. Prints
medians and, with a baseline, their ratios. The machine is shared: only the ratio of alternating rounds means
anything. Targets (issue 9): start-up below Node-RED's (the peer harness measures it), idle RSS <= 120 MB with the
editor loaded once.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
BODY = b'{"hello":"world","n":1,"items":[1,2,3]}'


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _python(checkout: Path) -> str:
    venv = checkout / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _cpu_s(pid: int, thread: int | None = None) -> float:
    """utime + stime of the process (all its threads) so far, or of one of its threads, in seconds: the figure other
    processes do not add to."""
    stat = Path(f"/proc/{pid}/stat" if thread is None else f"/proc/{pid}/task/{thread}/stat")
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _post(url: str) -> bool:
    try:
        request = urllib.request.Request(url, data=BODY, headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=1.0) as answer:
            return answer.status == 200
    except Exception:
        return False


def one(checkout: Path) -> tuple[float, float, float]:
    """(seconds from spawn to the first webhook 200, the server's CPU seconds until then, RSS in MB after the editor
    page was loaded once)."""
    python = _python(checkout)
    data = Path(tempfile.mkdtemp(prefix="flowboard-startup-"))
    env = {**os.environ, "FLOWBOARD_DATA_DIR": str(data), "PYTHONPATH": str(checkout)}
    for args in (["import", str(HERE / "flows" / "echo.json")], ["activate", "bench-echo"]):
        subprocess.run([python, "-m", "flowboard", *args], env=env, cwd=checkout, check=True, capture_output=True)
    port = _free_port()
    start = time.perf_counter()
    server = subprocess.Popen([python, "-m", "flowboard", "serve", "--no-browser", "--port", str(port), "--data-dir",
                               str(data)], env=env, cwd=checkout, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        while not _post(f"http://127.0.0.1:{port}/webhook/echo"):
            if server.poll() is not None or time.perf_counter() - start > 120:
                raise RuntimeError(f"the server in {checkout} did not answer")
            time.sleep(0.02)
        took = time.perf_counter() - start
        cpu = _cpu_s(server.pid)
        for _ in range(600):  # the editor page, once
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/flow/bench-echo", timeout=30) as answer:
                    if answer.status == 200:
                        answer.read()
                        break
            except Exception:
                time.sleep(0.1)
        time.sleep(1.0)
        return took, cpu, _rss_mb(server.pid)
    finally:
        _stop(server)


def _stop(server: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's process group (started with `start_new_session`), SIGKILL after 15 s."""
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--baseline", type=Path, help="another checkout (a git worktree) to alternate with")
    args = parser.parse_args()
    checkouts = {"this": HERE.parent}
    if args.baseline:
        checkouts["baseline"] = args.baseline.resolve()
    samples: dict[str, list[tuple[float, float, float]]] = {name: [] for name in checkouts}
    for _ in range(args.rounds):
        for name, checkout in checkouts.items():
            samples[name].append(one(checkout))
    load = os.getloadavg()[0]
    medians = {}
    for name, values in samples.items():
        startup = statistics.median(v[0] for v in values)
        cpu = statistics.median(v[1] for v in values)
        rss = statistics.median(v[2] for v in values)
        medians[name] = (startup, cpu, rss)
        print(f"{name}: start-up to the first webhook 200 {startup:.2f} s "
              f"({', '.join(f'{v[0]:.2f}' for v in values)}), CPU until then {cpu:.2f} s "
              f"({', '.join(f'{v[1]:.2f}' for v in values)}), RSS after the editor page {rss:.1f} MB "
              f"({', '.join(f'{v[2]:.1f}' for v in values)})")
    if "baseline" in medians:
        (s, c, r), (bs, bc, br) = medians["this"], medians["baseline"]
        print(f"this / baseline: start-up {s / bs:.2f}x, CPU {c / bc:.2f}x, RSS {r / br:.2f}x")
    print(f"load average {load:.1f}; verdict: RSS {'PASS' if medians['this'][2] <= 120 else 'FAIL'} (<= 120 MB)")


if __name__ == "__main__":
    main()

"""Run the real `flowboard` command in a subprocess with its own data folder (or, to set one up, in this process)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any


def env_for(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWBOARD_")}
    env["FLOWBOARD_DATA_DIR"] = str(data_dir)
    return env


def flowboard(data_dir: Path, *args: str, timeout: float = 60, input: str | None = None
              ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flowboard", *args], env=env_for(data_dir), capture_output=True,
                          text=True, timeout=timeout, input=input)


def flowboard_here(data_dir: Path, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    """`flowboard(...)` run by the same command code in this process, for tests that set a data folder up with many
    commands (each subprocess is a Python start-up: about a second on a loaded machine). Standard input, output and
    error and the FLOWBOARD_ settings are the command's own while it runs, as in `flowboard(...)`, and restored."""
    from flowboard.cli import main

    saved_env = {k: v for k, v in os.environ.items() if k.startswith("FLOWBOARD_")}
    saved_stdin = sys.stdin
    out, err = io.StringIO(), io.StringIO()
    for k in saved_env:
        del os.environ[k]
    os.environ["FLOWBOARD_DATA_DIR"] = str(data_dir)
    sys.stdin = io.StringIO(input or "")
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), ThreadPoolExecutor(1) as thread:
            # a thread of its own: the command runs its own event loop, and a test's may be running here
            # (Playwright's sync API keeps one)
            code = thread.submit(main, list(args)).result()
    finally:
        sys.stdin = saved_stdin
        for k in [k for k in os.environ if k.startswith("FLOWBOARD_")]:
            del os.environ[k]
        os.environ.update(saved_env)
    return subprocess.CompletedProcess(["flowboard", *args], code, out.getvalue(), err.getvalue())


def popen(data_dir: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "flowboard", *args], env=env_for(data_dir),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)


def run_and_kill(data_dir: Path, *args: str, when: Callable[[], object], what: Callable[[], str],
                 timeout: float = 60) -> None:
    """Start `flowboard *args` and kill it (-9) as soon as `when()` holds; fails with `what()` if the process ends or
    `timeout` seconds pass first (a loaded machine takes a while to start it)."""
    proc = popen(data_dir, *args)
    deadline = time.monotonic() + timeout
    try:
        while not when():
            assert time.monotonic() < deadline and proc.poll() is None, what()
            time.sleep(0.02)
    finally:
        proc.kill()
        proc.wait(10)


def result_json(proc: subprocess.CompletedProcess[str]) -> Any:
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"not JSON on stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}") from None

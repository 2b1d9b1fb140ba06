"""How a code worker is started: inside bubblewrap when the machine allows it, else with limits only.

bwrap mode: new user, pid, ipc, uts, cgroup and network namespaces (the network shared only when the node enables
it), no capabilities, a clean environment, a new session, killed with its parent, and a filesystem that holds only
the system's /usr, the Python install (its site-packages hidden), orjson, the worker's two files, a minimal /dev and
a small tmpfs /tmp. No /home, /root, /etc (DNS files only when the network is on), /proc, data folder or database.

rlimits mode (when bwrap is missing or cannot create namespaces, as in some containers): the same clean environment,
rlimits and system-call filter, in an empty temporary folder, but the files of the machine stay readable to the code
as to the user who runs Flowboard. The pool says which mode it runs in, and logs a warning in rlimits mode.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

HERE = Path(__file__).resolve().parent
TMP_SIZE = 64 * 1024 * 1024  # the sandbox's /tmp, in memory
CLEAN_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"}
NETWORK_FILES = ("/etc/resolv.conf", "/etc/hosts", "/etc/nsswitch.conf", "/etc/host.conf", "/etc/gai.conf",
                 "/etc/ssl", "/etc/ca-certificates", "/etc/pki")


def python() -> tuple[str, str]:
    """The real interpreter (not a virtualenv's link to it) and the install it belongs to."""
    executable = os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)
    return executable, sys.base_prefix


def bwrap_path() -> str | None:
    return shutil.which("bwrap")


def probe_bwrap() -> str | None:
    """None when bubblewrap can build the sandbox here, else why not."""
    bwrap = bwrap_path()
    if bwrap is None:
        return "bubblewrap (bwrap) is not installed"
    try:
        done = subprocess.run([bwrap, "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/", "true"],
                              capture_output=True, timeout=10, env=CLEAN_ENV)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bubblewrap could not start: {exc}"
    if done.returncode != 0:
        return f"bubblewrap cannot create namespaces here: {done.stderr.decode(errors='replace').strip()}"
    return None


def bwrap_command(network: bool) -> list[str]:
    bwrap = bwrap_path()
    assert bwrap is not None
    executable, prefix = python()
    cmd = [bwrap, "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL", "--clearenv",
           "--hostname", "sandbox"]
    if network:
        cmd.append("--share-net")
    for key, value in {**CLEAN_ENV, "FLOWBOARD_CODE_TMP": "/tmp"}.items():
        cmd += ["--setenv", key, value]
    cmd += ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        top = Path("/") / name
        if top.is_symlink():
            cmd += ["--symlink", os.readlink(top), str(top)]
        elif top.is_dir():
            cmd += ["--ro-bind", str(top), str(top)]
    if not prefix.startswith("/usr/"):
        cmd += ["--ro-bind", prefix, prefix]
    if not executable.startswith((prefix + "/", "/usr/")):
        cmd += ["--ro-bind", executable, executable]
    paths = sysconfig.get_paths(vars={"base": prefix, "platbase": prefix})
    for path in dict.fromkeys((paths["purelib"], paths["platlib"])):  # the server's libraries: not the code's business
        if os.path.isdir(path):
            cmd += ["--tmpfs", path, "--remount-ro", path]
    cmd += ["--ro-bind", str(HERE / "child.py"), "/sandbox/child.py",
            "--ro-bind", str(HERE / "seccomp.py"), "/sandbox/seccomp.py"]
    orjson_dir = _orjson_dir()
    if orjson_dir:
        cmd += ["--ro-bind", orjson_dir, "/sandbox/lib/orjson"]
    cmd += ["--dev", "/dev", "--size", str(TMP_SIZE), "--tmpfs", "/tmp", "--chdir", "/tmp"]
    if network:
        for path in NETWORK_FILES:
            cmd += ["--ro-bind-try", path, path]
    cmd += ["--remount-ro", "/dev", "--remount-ro", "/"]  # /tmp is the only place to write (emptied after each call)
    cmd += ["--", executable, "-I", "-S", "-B", "/sandbox/child.py"]
    return cmd


def rlimits_command() -> list[str]:
    executable, _ = python()
    return [executable, "-I", "-S", "-B", str(HERE / "child.py")]


def _orjson_dir() -> str | None:
    try:
        import orjson
    except ImportError:  # pragma: no cover - a dependency
        return None
    return str(Path(orjson.__file__).resolve().parent)

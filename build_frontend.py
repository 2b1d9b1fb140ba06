"""Builds the canvas front-end (frontend/ -> flowboard/ui/dist/) whenever setuptools builds the Python package.

pyproject.toml names `BuildPyWithFrontend` as the `build_py` command. setuptools runs `build_py` for wheels
(`pip install .`, `pip wheel .`, sdist -> wheel) and for editable installs (`pip install -e .`), so the bundle is
built in the source tree first and then shipped as package data. The built files are never committed.

- `npm ci` runs when frontend/node_modules is missing or older than package-lock.json; then `npm run build`.
- Without npm: an existing bundle that is newer than every front-end source is used as it is; otherwise the build
  stops with a message that says what to install.
- `FLOWBOARD_SKIP_FRONTEND=1` skips the front-end entirely (Python-only jobs; the canvas will not load).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
FRONTEND = ROOT / "frontend"
BUNDLE = ROOT / "flowboard" / "ui" / "dist" / "index.js"
SWAGGER = ROOT / "flowboard" / "ui" / "dist" / "swagger" / "swagger-ui-bundle.js"  # copied by vite.config.js, for /docs


class FrontendBuildError(RuntimeError):
    pass


def _sources() -> list[Path]:
    files = [FRONTEND / name for name in ("package.json", "package-lock.json", "vite.config.js")]
    return files + [p for p in (FRONTEND / "src").rglob("*") if p.is_file()]


def bundle_is_current() -> bool:
    """True if the built bundle exists and no front-end source changed after it was built."""
    if not BUNDLE.is_file() or not SWAGGER.is_file():
        return False
    built = BUNDLE.stat().st_mtime
    return all(p.stat().st_mtime <= built for p in _sources() if p.exists())


def _run(command: list[str]) -> None:
    print(f"flowboard: {' '.join(Path(command[0]).name if i == 0 else c for i, c in enumerate(command))}", flush=True)
    result = subprocess.run(command, cwd=FRONTEND, check=False)
    if result.returncode:
        raise FrontendBuildError(f"`{' '.join(command[1:])}` failed in {FRONTEND} (exit code {result.returncode})")


def build_frontend() -> None:
    """Install the locked npm packages if needed, then build the bundle."""
    if os.environ.get("FLOWBOARD_SKIP_FRONTEND"):
        print("flowboard: FLOWBOARD_SKIP_FRONTEND is set, not building the canvas", flush=True)
        return
    if not (FRONTEND / "package.json").is_file():
        if BUNDLE.is_file():
            return  # a source tree without the front-end sources but with the bundle: nothing to build
        raise FrontendBuildError(f"{FRONTEND / 'package.json'} is missing, so the canvas cannot be built")
    npm = shutil.which("npm")
    if npm is None:
        if bundle_is_current():
            print("flowboard: npm not found; the built canvas is up to date, using it", flush=True)
            return
        raise FrontendBuildError(
            "Building Flowboard needs Node.js (20.19+ or 22.12+) and npm, to build the flow canvas in frontend/. "
            "Install them (https://nodejs.org/) and try again, or install a prebuilt Flowboard wheel."
        )
    installed = FRONTEND / "node_modules" / ".package-lock.json"  # npm rewrites it on every install
    lock = FRONTEND / "package-lock.json"
    if not installed.is_file() or installed.stat().st_mtime < lock.stat().st_mtime:
        _run([npm, "ci", "--no-audit", "--no-fund"])
    _run([npm, "run", "build"])
    for built in (BUNDLE, SWAGGER):
        if not built.is_file():
            raise FrontendBuildError(f"`npm run build` did not produce {built}")


class BuildPyWithFrontend(build_py):
    """setuptools' build_py, with the front-end built first so that its files are package data."""

    def run(self) -> None:
        build_frontend()
        self.__dict__.pop("data_files", None)  # computed lazily; recompute so the fresh bundle is included
        super().run()

"""setuptools `build_py` that first builds the canvas bundle with npm (see pyproject.toml: [tool.setuptools.cmdclass]).

`npm ci` runs only when node_modules is missing or older than package-lock.json; `npm run build` writes
flowboard/ui/dist/ (git-ignored, shipped as package data). setuptools runs this for editable installs too, so
`pip install -e .` on a fresh clone gives a working editor. Built JavaScript is never committed.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
FRONTEND = ROOT / "frontend"
DIST = ROOT / "flowboard" / "ui" / "dist"


def build_frontend() -> None:
    if not (FRONTEND / "package.json").exists():  # an sdist without front-end sources: the bundle is already in
        if (DIST / "index.js").exists():
            return
        raise RuntimeError("frontend/ is missing and there is no built canvas bundle in flowboard/ui/dist")
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("Flowboard's editor canvas is built with npm, which was not found. Install Node.js 20+ "
                           "with npm (e.g. `apt-get install nodejs npm`), then run the install again.")
    lock, modules = FRONTEND / "package-lock.json", FRONTEND / "node_modules"
    if not modules.exists() or modules.stat().st_mtime < lock.stat().st_mtime:
        subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=FRONTEND, check=True)
        modules.touch()
    subprocess.run([npm, "run", "build", "--silent"], cwd=FRONTEND, check=True)


class BuildPyWithFrontend(build_py):
    def run(self) -> None:
        build_frontend()
        super().run()

"""The example node package in examples/flowboard-example-nodes, installed by pip from its own pyproject.toml (built
with setuptools into a folder of its own, once for this module), adds a node type and a credential type: the node is
in the palette catalog and runs against a local notes service that checks the key, the credential type is on the
credentials page, and `flowboard nodes` says which package each type comes from."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp import web
from nicegui.testing import User

from flowboard import credential_types
from flowboard.model import parse_flow
from flowboard.registry import Registry, load_builtins, load_entry_points
from flowboard.services import Flowboard
from flowboard.ui import pages

from .clihelp import env_for
from .conftest import make_flow
from .pagekit import keep_flowboard_modules
from .servers import serve

pytest_plugins = ["nicegui.testing.user_plugin"]
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "flowboard-example-nodes"


def install_example(target: Path) -> None:
    """`pip install --target`: pip builds the package from a copy of its folder (a build leaves files beside the
    sources) with setuptools, and installs its code and its dist-info with the entry points."""
    source = target.parent / "source"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
                           "--disable-pip-version-check", "--quiet", "--target", str(target), str(source)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, f"pip could not install the example package:\n{proc.stdout}\n{proc.stderr}"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("example") / "site"
    install_example(target)
    return target


@pytest.fixture
def installed(site: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.syspath_prepend(str(site))
    yield site
    credential_types._TYPES.pop("example_notes_key", None)  # the credential type goes with the package
    for name in [n for n in sys.modules if n.startswith("flowboard_example_nodes")]:
        del sys.modules[name]


def test_pip_installed_the_package_with_its_entry_point(site: Path) -> None:
    [info] = site.glob("flowboard_example_nodes-*.dist-info")
    assert info.name == "flowboard_example_nodes-0.1.0.dist-info"
    assert "notes = flowboard_example_nodes.notes" in (info / "entry_points.txt").read_text()
    assert (info / "INSTALLER").read_text().strip() == "pip"
    assert (site / "flowboard_example_nodes" / "notes.py").is_file()


@pytest.fixture
async def notes() -> AsyncIterator[tuple[str, list[dict[str, str]]]]:
    """A notes service that saves a note only with the key 'n0tes-key'."""
    saved: list[dict[str, str]] = []

    async def post(request: web.Request) -> web.Response:
        if request.headers.get("X-Notes-Key") != "n0tes-key":
            return web.json_response({"error": "wrong key"}, status=401)
        saved.append(await request.json())
        return web.json_response({"id": len(saved)})

    app = web.Application()
    app.router.add_post("/notes", post)
    runner, port = await serve(app)
    yield f"http://127.0.0.1:{port}", saved
    await runner.cleanup()


_keep_modules = keep_flowboard_modules()


def test_flowboard_nodes_names_each_types_package(installed: Path, tmp_path: Path) -> None:
    env = {**env_for(tmp_path / "data"), "PYTHONPATH": str(installed)}
    proc = subprocess.run([sys.executable, "-m", "flowboard", "nodes"], env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    lines = {line.split()[0]: line for line in proc.stdout.splitlines() if line.strip()}
    assert "[flowboard-example-nodes 0.1.0]" in lines["example.save_note"]
    assert "[flowboard]" in lines["http.request"] and "[flowboard]" in lines["trigger.manual"]


async def test_the_example_package_adds_a_node_and_a_credential_type(user: User, installed: Path, tmp_path: Path,
                                                                      notes: tuple[str, list[dict[str, str]]]) -> None:
    registry = Registry()
    load_builtins(registry)
    load_entry_points(registry)
    assert registry.package("example.save_note") == "flowboard-example-nodes 0.1.0"
    entry = next(e for e in registry.catalog() if e["type"] == "example.save_note")  # what the palette shows
    assert entry["title"] == "Save note" and entry["category"] == "integration"
    assert entry["config_schema"]["properties"]["credential"]["credential_types"] == ["example_notes_key"]
    declaration = credential_types.get("example_notes_key")
    assert declaration is not None and declaration.label == "Notes service key"

    fb = Flowboard(data_dir=tmp_path / "data", registry=registry)
    try:
        pages.register(fb)
        address, saved = notes
        await user.open("/credentials")
        user.find(marker="new-credential").click()
        await user.should_see(marker="credential-save")
        user.find(marker="credential-name").elements.pop().value = "notes"
        user.find(marker="credential-type").elements.pop().value = "example_notes_key"
        await user.should_see("Service address")
        await user.should_see("The address of your notes service and the API key it gave you.")
        user.find(marker="credential-field:address").elements.pop().value = "notes.example.com"
        user.find(marker="credential-field:key").elements.pop().value = "n0tes-key"
        user.find(marker="credential-save").click()
        await user.should_see("Service address (address) starts with http:// or https://")  # its own check
        assert fb.store.list_credentials() == []
        user.find(marker="credential-field:address").elements.pop().value = address
        user.find(marker="credential-save").click()
        await user.should_see(marker="credential:notes")
        assert fb.store.get_credential("notes") == {"address": address, "key": "n0tes-key"}

        flow = parse_flow(make_flow([{"id": "t", "type": "trigger.manual"},
                                     {"id": "n", "type": "example.save_note", "config": {"credential": "notes",
                                                                              "text": "{{ item.text }}"}}],
                                    [("t", "n")]))
        fb.save_flow(flow, None)
        result = await fb.run_flow(flow.id, [{"text": "buy milk"}, {"text": "call ada"}])
        assert result.output == [{"text": "buy milk", "note_id": 1}, {"text": "call ada", "note_id": 2}]
        assert saved == [{"text": "buy milk"}, {"text": "call ada"}]

        fb.store.set_credential("notes", "example_notes_key", {"address": address, "key": "wr0ng-key"})
        failed = await fb.run_flow(flow.id, [{"text": "x"}])
        assert failed.status.value == "failed" and "answered 401" in str(failed.error)
        assert "wr0ng-key" not in str(failed.error)
    finally:
        await fb.aclose()

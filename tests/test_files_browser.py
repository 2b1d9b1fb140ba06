"""In Chromium: a run whose items carry a file shows it in the run page's data view (name, type, size) and the
Download link gives the file's bytes under its name."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from flowboard.model import parse_flow
from flowboard.services import Flowboard

from .conftest import make_flow
from .serve import Server
from .test_people_browser import Chromium, chromium  # noqa: F401


@pytest.fixture
def made(tmp_path: Path) -> tuple[str, dict[str, object], bytes]:
    """A run whose output carries a spreadsheet, made before Chromium starts (its event loop would be running)."""
    data_dir = tmp_path
    async def go() -> tuple[str, dict[str, object], bytes]:
        fb = Flowboard(data_dir=data_dir)
        try:
            flow = parse_flow(make_flow([{"id": "t", "type": "trigger.manual"},
                                         {"id": "sheet", "type": "convert.to_file",
                                          "config": {"format": "xlsx", "name": "Équipe"}}],
                                        [("t", "sheet")], name="Team sheet"))
            fb.save_flow(flow, None)
            result = await fb.run_flow(flow.id, [{"name": "Ada Lovelace", "team": "Engines", "since": 1843},
                                                 {"name": "Grace Hopper", "team": "Compilers", "since": 1952}])
            ref = result.output[0]["file"]
            return result.run_id, ref, fb.blobs.get(ref)
        finally:
            await fb.aclose()

    return asyncio.run(go())


def test_a_file_in_a_run_shows_and_downloads(tmp_path: Path, made: tuple[str, dict[str, object], bytes],
                                             chromium: Chromium) -> None:  # noqa: F811
    run_id, ref, data = made
    server = Server(tmp_path)
    page = chromium.tab()
    try:
        page.set_viewport_size({"width": 1300, "height": 700})
        page.goto(f"{server.url}/run/{run_id}")
        row = page.locator(".fb-data, body").get_by_text("spreadsheet (xlsx) ·")
        row.wait_for()
        assert page.get_by_text("Équipe.xlsx", exact=True).count() == 1
        page.screenshot(path=str(Path(os.environ.get("FLOWBOARD_SHOTS", tmp_path)) / "run-file.png"))
        with page.expect_download() as caught:
            page.get_by_text("Download").click()
        download = caught.value
        assert download.suggested_filename == "Équipe.xlsx"
        assert Path(download.path()).read_bytes() == data and ref["size"] == len(data)
    finally:
        page.context.close()
        server.stop()
    assert not server.errors(), server.output


@pytest.fixture
def flow_with_a_file(tmp_path: Path) -> tuple[str, dict[str, object], bytes]:
    """A flow trigger -> 'Make a sheet' (a file) -> 'Mark' with one run, made before Chromium starts."""
    async def go() -> tuple[str, dict[str, object], bytes]:
        fb = Flowboard(data_dir=tmp_path)
        try:
            flow = parse_flow(make_flow([{"id": "t", "type": "trigger.manual"},
                                         {"id": "sheet", "type": "convert.to_file", "position": {"x": 260, "y": 0},
                                          "config": {"format": "csv", "name": "team"}},
                                         {"id": "mark", "type": "data.set", "position": {"x": 520, "y": 0},
                                          "config": {"fields": [{"name": "sent", "value": True}]}}],
                                        [("t", "sheet"), ("sheet", "mark")], name="Team file"))
            fb.save_flow(flow, None)
            result = await fb.run_flow(flow.id, [{"name": "Ada Lovelace", "team": "Engines"},
                                                 {"name": "Grace Hopper", "team": "Compilers"}])
            ref = result.steps["sheet"].outputs["main"][0]["file"]
            return flow.id, ref, fb.blobs.get(ref)
        finally:
            await fb.aclose()

    return asyncio.run(go())


def test_the_node_views_input_panel_downloads_a_file_coming_in(
        tmp_path: Path, flow_with_a_file: tuple[str, dict[str, object], bytes],
        chromium: Chromium) -> None:  # noqa: F811
    flow_id, ref, data = flow_with_a_file
    server = Server(tmp_path)
    page = chromium.tab()
    try:
        page.set_viewport_size({"width": 1400, "height": 800})
        page.goto(f"{server.url}/flow/{flow_id}")
        page.wait_for_function("window.__flowboardCanvasReady === true")
        page.locator(".vue-flow__node[data-id=mark]").dblclick()
        page.locator(".fb-node-view .fb-form").wait_for()
        panel = page.locator(".fb-node-view .fb-nv-col").first  # the input column; the output is the last
        panel.locator(".font-medium", has_text="team.csv").wait_for()
        assert "CSV" in panel.inner_text() and f"{ref['size']} bytes" in panel.inner_text()
        page.screenshot(path=str(Path(os.environ.get("FLOWBOARD_SHOTS", tmp_path)) / "node-view-input-file.png"))
        with page.expect_download() as caught:
            panel.get_by_text("Download").click()
        download = caught.value
        assert download.suggested_filename == "team.csv"
        assert Path(download.path()).read_bytes() == data and ref["size"] == len(data)
    finally:
        page.context.close()
        server.stop()
    assert not server.errors(), server.output

"""What the in-process page tests share (NiceGUI's simulated `user`, loaded by `pytest_plugins =
["nicegui.testing.user_plugin"]` in the test module): the fixtures, made here once and named by each module as
`_keep_modules, fb, app = page_fixtures()`."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from nicegui.testing import User

from flowboard.services import Flowboard


def keep_flowboard_modules(*, autouse: bool = True) -> Any:
    """NiceGUI's user fixture forgets the modules whose functions it served as pages (flowboard.ui.pages and its
    parents) so a main file can be run afresh; a re-imported flowboard would have new exception classes. This fixture
    puts them back, and tells the user fixture there is no main file. (Autouse: set up before `user`, so torn down
    after it.)"""

    @pytest.fixture(autouse=autouse)
    def keep(request: pytest.FixtureRequest) -> Iterator[None]:
        request.node.add_marker(pytest.mark.nicegui_main_file(""))
        saved = {name: module for name, module in sys.modules.items()
                 if name == "flowboard" or name.startswith("flowboard.")}
        yield
        sys.modules.update(saved)

    return keep


def page_fixtures() -> tuple[Any, Any, Any]:
    """The module fixtures of a page test: the autouse `keep_flowboard_modules`, `fb` (a Flowboard on SQLite in the
    test's temp folder) and `app` (that Flowboard with its pages registered, for `user.open`)."""

    @pytest.fixture
    async def fb(tmp_path: Path) -> AsyncIterator[Flowboard]:
        board = Flowboard(data_dir=tmp_path)
        yield board
        await board.aclose()

    @pytest.fixture
    def app(user: User, fb: Flowboard) -> Flowboard:
        from flowboard.ui import pages

        pages.register(fb)
        return fb

    return keep_flowboard_modules(), fb, app

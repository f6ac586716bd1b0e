"""Fault-test fixtures: two live daphne processes shared by the tests that do not break them.

Starting daphne costs seconds, so the tests that only talk to the hub share one pair
(`live`); the tests that kill, stop or starve a process start their own (`hubs`, or
their own services). Each test still gets an empty database, and `live` fails the test
if a hub process died or logged an exception while it ran.
"""

from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from channels.layers import channel_layers

from tests import settings as test_settings
from tests.faults.peers import OPENED, MockAppProcess, close_all
from tests.live import Daphne, running_hubs

_shared: dict[str, Any] = {}  # "hubs": the running pair, "stack": what stops it


@pytest.fixture
def shared_hubs(transactional_db: Any, tmp_path_factory: pytest.TempPathFactory) -> list[Daphne]:
    """The pair, started on first use and kept while the run stays in tests/faults."""
    if not (test_settings.HAVE_POSTGRES and test_settings.HAVE_REDIS):
        pytest.skip("needs PostgreSQL and Redis (see README)")
    if "hubs" not in _shared:
        stack = ExitStack()
        _shared["hubs"] = stack.enter_context(running_hubs(tmp_path_factory.mktemp("shared-hubs"), 2))
        _shared["stack"] = stack
    return _shared["hubs"]  # type: ignore[no-any-return]


@pytest.hookimpl(trylast=True)  # after the test's own fixtures are torn down
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Stop the pair when the run leaves tests/faults (pytest-django groups tests by database use, so
    it may come back later): their sweeps would otherwise touch the rows of other directories' tests."""
    if "stack" in _shared and (nextitem is None or Path(__file__).parent not in Path(nextitem.path).parents):
        del _shared["hubs"]
        _shared.pop("stack").close()


@pytest.fixture
async def live(shared_hubs: list[Daphne], transactional_db: Any) -> AsyncIterator[list[Daphne]]:
    """The shared pair [a, b]: alive before the test, alive and without a logged exception after it."""
    for hub in shared_hubs:
        assert hub.proc is not None and hub.proc.poll() is None, f"{hub.name} died in an earlier test"
    marks = [hub.log_path.stat().st_size for hub in shared_hubs]
    OPENED.clear()  # what earlier tests opened died with their event loop (or their own hubs)
    yield shared_hubs
    await close_all()
    for hub, mark in zip(shared_hubs, marks, strict=True):
        assert hub.proc is not None and hub.proc.poll() is None, f"{hub.name} died:\n{hub.log()[-3000:]}"
        with open(hub.log_path, "rb") as log:
            log.seek(mark)
            new = log.read().decode(errors="replace")
        assert "Traceback" not in new, f"{hub.name} logged an exception:\n{new[-4000:]}"


@pytest.fixture
def mock_apps(tmp_path: Path) -> Iterator[list[MockAppProcess]]:
    """Mock app processes a test starts; all killed at the end."""
    started: list[MockAppProcess] = []
    yield started
    for app in started:
        app.kill()


@pytest.fixture
def fresh_channel_layer() -> Iterator[None]:
    """In-process tests: a channel layer must not outlive its event loop."""
    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if "stack" in _shared:
        del _shared["hubs"]
        _shared.pop("stack").close()

"""Every hub process sweeps: "none stays running past its deadline plus one sweep" must not depend on
which sockets happen to be open on the process that is still alive."""

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.utils import timezone

from relay import queue, sweeper
from relay.events import publish
from relay.models import InferenceRequest
from tests.relay.conftest import ORIGIN, Peer, follow

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fresh_channel_layer")]


async def _sweep_without_grace() -> None:
    await publish(await database_sync_to_async(queue.sweep)(timedelta(0)))


@pytest.fixture
def fast_sweeps(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process sweeps often and without the 2 s grace, so that it, and not another process sharing
    the test database (the live hubs of other tests sweep it too), is the one that ends the request."""
    monkeypatch.setattr(sweeper, "INTERVAL_SECONDS", 0.2)
    monkeypatch.setattr(sweeper, "sweep_once", _sweep_without_grace)
    monkeypatch.setattr(sweeper, "_task", None)
    yield
    if sweeper._task is not None:
        sweeper._task.cancel()


def overdue_on_a_frozen_process(space: Any, user: Any) -> InferenceRequest:
    """A running request past its deadline, held by an app whose hub process is frozen: its lease is
    still live, but nothing on that process acts."""
    queue.acquire_lease(space, "frozen", "frozen.channel", {}, "10.0.0.1")
    req = queue.enqueue(space, user, {"prompt": "stuck"}).request
    assert req is not None
    queue.claim_next(space, "frozen")
    # Overdue, but within the sweep's 2 s grace for the other processes.
    InferenceRequest.objects.filter(pk=req.pk).update(deadline=timezone.now() - timedelta(seconds=0.2))
    return req


async def test_a_process_that_only_streams_requests_still_times_them_out(
    make_space: Any, alice: Any, fast_sweeps: None
) -> None:
    space, _ = await database_sync_to_async(make_space)("Slow", timeout_seconds=1)
    req = await database_sync_to_async(overdue_on_a_frozen_process)(space, alice)
    browser = await follow(req.id, alice)  # the only socket on this process
    assert (await browser.recv())["request"]["status"] == "running"
    final = await browser.recv_type("error", timeout=1.2)
    assert final["error"]["code"] == "timed_out"


async def test_a_process_with_a_space_page_open_times_them_out(make_space: Any, alice: Any, fast_sweeps: None) -> None:
    space, _ = await database_sync_to_async(make_space)("Slow", timeout_seconds=1)
    req = await database_sync_to_async(overdue_on_a_frozen_process)(space, alice)
    page = await Peer("/ws/spaces/slow/", [ORIGIN]).connect()
    browser = await follow(req.id, alice)
    state = (await browser.recv())["request"]
    if state["status"] == "running":  # else the page's sweeper was quicker than the follower: as good
        state = (await browser.recv_type("error", timeout=1.2))["error"]
        assert state["code"] == "timed_out"
    else:
        assert state["error"]["code"] == "timed_out"
    await page.close()

"""Remote apps that die, go silent or answer too late, against two live daphne processes.

The app sits on process a, the person (HTTP and the request stream) on process b, so every
promise is kept across processes. PROTOCOL.md section 1, "If the app disconnects ...",
and docs/guarantees.md.
"""

import asyncio
import base64
import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings

from relay.models import RequestFile
from tests.faults.peers import (
    Follower,
    MockAppProcess,
    answer,
    answer_of,
    closed,
    recv,
    register,
    register_when_free,
    serve,
    state,
    submit,
    until,
    wait_connected,
    wait_status,
)
from tests.live import Daphne, WebUser

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

# tests.live starts daphne with --ping-interval 5 --ping-timeout 10, and daphne checks its pings
# every 2 s: a peer that stopped answering is dropped at most this long after its last frame.
SILENT_DROP_SECONDS = 5 + 2 + 10


@pytest.fixture
def echo(make_space: Any) -> tuple[Any, str]:
    return make_space("Echo")


@pytest.fixture
def web(live: list[Daphne], alice: Any) -> WebUser:
    return WebUser(live[1], alice)


async def working(web: WebUser, request_id: str) -> dict[str, Any]:
    """The mock app has the request and reports progress: it is mid-request."""

    async def reported() -> dict[str, Any] | None:
        body = await state(web, request_id)
        return body if body["status"] == "running" and body["progress"] is not None else None

    return await until(reported, 20, f"the app to work on {request_id}", every=0.1)


async def test_a_killed_app_s_request_goes_back_to_the_head_of_the_queue_and_runs_again(
    live: list[Daphne], echo: Any, web: WebUser, mock_apps: list[MockAppProcess], tmp_path: Path
) -> None:
    a, b = live
    _, token = echo
    mock_apps.append(app := MockAppProcess(tmp_path, a, [("Echo", token)], delay="30"))
    await wait_connected(a, "echo")
    first = await submit(web, "echo", "first")
    second = await submit(web, "echo", "second")
    follower = await Follower.open(b, web, first)
    await working(web, first)

    app.kill()
    killed = time.monotonic()
    requeued = await wait_status(web, first, {"queued"}, timeout=10)
    took = time.monotonic() - killed
    assert took < 3, f"a closed connection requeues at once (took {took:.1f} s)"
    assert (requeued["attempt"], requeued["position"]) == (1, 1), "back at the head of the queue, ahead of second"

    ws, registered = await register(a, "Echo", token)
    assert registered["type"] == "registered", "a dead app's space is free at once"
    again = await recv(ws, "request")
    assert (again["id"], again["attempt"], again["inputs"]) == (first, 2, {"prompt": "first"})
    await answer(ws, again)
    serving = asyncio.create_task(serve(ws))
    final = await follower.until_final()
    assert final == {"type": "result", "outputs": {"text": answer_of("first"), "files": []}}
    assert follower.text == answer_of("first")
    statuses = [(f["status"], f.get("attempt")) for f in follower.frames if f["type"] == "status"]
    assert ("queued", 1) in statuses and statuses[-1] == ("running", 2), statuses
    done = await state(web, first)
    assert (done["status"], done["attempt"], done["text"]) == ("succeeded", 2, answer_of("first"))
    after = await wait_status(web, second, {"succeeded"})
    assert (after["attempt"], after["text"]) == (1, answer_of("second"))
    await ws.close()
    await serving


async def test_a_request_whose_app_dies_three_times_fails_with_app_disconnected(
    live: list[Daphne], echo: Any, web: WebUser, mock_apps: list[MockAppProcess], tmp_path: Path
) -> None:
    a, _ = live
    _, token = echo
    request_id = None
    for attempt in (1, 2, 3):
        mock_apps.append(app := MockAppProcess(tmp_path, a, [("Echo", token)], delay="30"))
        if request_id is None:
            await wait_connected(a, "echo")
            request_id = await submit(web, "echo", "doomed")
            follower = await Follower.open(a, web, request_id)
        running = await working(web, request_id)
        assert running["attempt"] == attempt
        app.kill()
    final = await follower.until_final()
    assert final["type"] == "error" and final["error"]["code"] == "app_disconnected", final
    body = await state(web, request_id)
    assert (body["status"], body["attempt"], body["error"]["code"]) == ("failed", 3, "app_disconnected")


async def test_an_app_that_stops_answering_pings_is_dropped_and_its_request_requeued(
    live: list[Daphne], make_space: Any, web: WebUser, mock_apps: list[MockAppProcess], tmp_path: Path
) -> None:
    """A silent network cut, two ways: a client that stops reading, and a SIGSTOPped app process."""
    a, b = live
    _, quiet_token = await sync_to_async(make_space)("Quiet")
    _, frozen_token = await sync_to_async(make_space)("Frozen")

    quiet, _ = await register(a, "Quiet", quiet_token, ping_interval=None)
    quiet_id = await submit(web, "quiet", "quiet")
    assert (await recv(quiet, "request"))["id"] == quiet_id
    mock_apps.append(frozen := MockAppProcess(tmp_path, a, [("Frozen", frozen_token)], delay="30"))
    await wait_connected(a, "frozen")
    frozen_id = await submit(web, "frozen", "frozen")
    await working(web, frozen_id)

    quiet.transport.pause_reading()  # our pongs stop: the hub's pings go unanswered
    frozen.send(signal.SIGSTOP)
    silenced = time.monotonic()
    took = {}
    for request_id in (quiet_id, frozen_id):
        requeued = await wait_status(web, request_id, {"queued"}, timeout=SILENT_DROP_SECONDS + 8)
        took[request_id] = time.monotonic() - silenced
        assert requeued["attempt"] == 1
    assert max(took.values()) <= SILENT_DROP_SECONDS + 3, took

    for slug, space, token, request_id in (
        ("quiet", "Quiet", quiet_token, quiet_id),
        ("frozen", "Frozen", frozen_token, frozen_id),
    ):
        ws, registered = await register(b, space, token)
        assert registered["type"] == "registered", f"{slug}: the dropped connection no longer holds the space"
        again = await recv(ws, "request")
        assert (again["id"], again["attempt"]) == (request_id, 2)
        await ws.send(json.dumps({"type": "result", "id": request_id, "outputs": {"text": "back"}}))
        assert (await wait_status(web, request_id, {"succeeded"}))["text"] == "back"
        await ws.close()
    quiet.transport.abort()
    frozen.kill()


def _output_files(request_id: str) -> list[Path]:
    folder = Path(settings.MEDIA_ROOT) / "relay" / request_id
    return sorted(folder.iterdir()) if folder.exists() else []


async def test_a_late_result_after_a_cancel_is_ignored(live: list[Daphne], echo: Any, web: WebUser) -> None:
    a, b = live
    _, token = echo
    app, _ = await register(a, "Echo", token)
    request_id = await submit(web, "echo", "cancel me")
    follower = await Follower.open(b, web, request_id)
    await recv(app, "request")
    await app.send(json.dumps({"type": "partial", "id": request_id, "text": "so far"}))
    await until(lambda: _text_is(web, request_id, "so far"), 10, "the partial to be recorded")

    status, body = await asyncio.to_thread(web.request, "POST", f"/api/requests/{request_id}/cancel/")
    assert (status, body["status"]) == (200, "cancelled"), body
    assert await recv(app) == {"type": "cancel", "id": request_id, "reason": "cancelled"}
    late_file = {"name": "late.txt", "content_type": "text/plain", "data": base64.b64encode(b"late").decode()}
    await app.send(json.dumps({"type": "partial", "id": request_id, "text": " and more"}))
    await app.send(json.dumps({"type": "result", "id": request_id, "outputs": {"text": "late", "files": [late_file]}}))
    await app.send(json.dumps({"type": "ping"}))
    assert await recv(app) == {"type": "pong"}, "frames about a cancelled id are ignored silently"

    final = await follower.until_final()
    assert final["type"] == "error" and final["error"]["code"] == "cancelled"
    body = await state(web, request_id)
    assert (body["status"], body["outputs"], body["text"]) == ("cancelled", None, "so far")
    outputs = RequestFile.objects.filter(request_id=request_id, role="output")
    assert not await sync_to_async(outputs.count)()
    assert not _output_files(request_id), "the late result's file was not kept"
    replay = await Follower.open(b, web, request_id)
    assert replay.final is not None and replay.final["request"]["status"] == "cancelled"
    assert await closed(replay.ws) == 1000

    # A result that crosses the cancel on the wire (sent before the app saw the cancel) loses too.
    racing = await submit(web, "echo", "race")
    await recv(app, "request")
    status, _ = await asyncio.to_thread(web.request, "POST", f"/api/requests/{racing}/cancel/")
    assert status == 200
    await app.send(json.dumps({"type": "result", "id": racing, "outputs": {"text": "lost", "files": [late_file]}}))
    await until(lambda: _quiet_after(app), 10, "the app's connection to settle")
    body = await state(web, racing)
    assert (body["status"], body["outputs"]) == ("cancelled", None)
    assert not _output_files(racing), "the losing result's file was removed"

    serving = asyncio.create_task(serve(app))
    nxt = await submit(web, "echo", "next")
    assert (await wait_status(web, nxt, {"succeeded"}))["text"] == answer_of("next"), "the app is not stuck"
    await app.close()
    await serving


async def _text_is(web: WebUser, request_id: str, text: str) -> bool:
    return (await state(web, request_id))["text"] == text


async def _quiet_after(app: Any) -> bool:
    """Ping until the pong comes back with nothing but an optional cancel before it."""
    await app.send(json.dumps({"type": "ping"}))
    while True:
        frame = await recv(app)
        if frame["type"] == "pong":
            return True
        assert frame["type"] == "cancel", f"only a cancel may precede the pong, not {frame}"


async def test_a_late_result_after_a_timeout_is_ignored(live: list[Daphne], make_space: Any, web: WebUser) -> None:
    a, b = live
    _, token = await sync_to_async(make_space)("Slow", timeout_seconds=1)
    app, _ = await register(a, "Slow", token)
    request_id = await submit(web, "slow", "too slow")
    follower = await Follower.open(b, web, request_id)
    frame = await recv(app, "request")
    sent = time.monotonic()
    assert await recv(app, timeout=5) == {"type": "cancel", "id": request_id, "reason": "timeout"}
    assert time.monotonic() - sent < 1 + 1.5, "the app's own process times it out at the deadline"
    await app.send(json.dumps({"type": "result", "id": frame["id"], "outputs": {"text": "too late"}}))
    await app.send(json.dumps({"type": "ping"}))
    assert await recv(app) == {"type": "pong"}
    final = await follower.until_final()
    assert final["error"]["code"] == "timed_out"
    body = await state(web, request_id)
    assert (body["status"], body["outputs"], body["error"]["code"]) == ("timed_out", None, "timed_out")
    replay = await Follower.open(b, web, request_id)
    assert replay.final is not None and replay.final["request"]["status"] == "timed_out"
    await app.close()


async def test_an_app_that_closes_without_answering_loses_no_request(
    live: list[Daphne], echo: Any, web: WebUser
) -> None:
    """A clean close (1000) mid-request is a disconnect like any other: the request runs again."""
    a, b = live
    _, token = echo
    app, _ = await register(a, "Echo", token)
    request_id = await submit(web, "echo", "closing")
    await recv(app, "request")
    await app.close()
    again = await register_when_free(b, "Echo", token, timeout=5)
    frame = await recv(again, "request")
    assert (frame["id"], frame["attempt"]) == (request_id, 2)
    await again.send(json.dumps({"type": "result", "id": request_id, "outputs": {"text": "done"}}))
    assert (await wait_status(web, request_id, {"succeeded"}))["attempt"] == 2
    await again.close()

"""A Request with a fake connection: streaming, coalescing, cancellation, the plain-def helpers."""

import asyncio
from typing import Any

import pytest

from relay.client import ClientError, Request, RequestCancelled, SyncRequest
from relay.client.request import in_thread

FRAME = {
    "type": "request",
    "id": "r1",
    "attempt": 2,
    "deadline": "2026-01-01T12:02:00Z",
    "inputs": {"prompt": "hi", "files": [{"name": "a.txt", "content_type": "text/plain", "size": 1, "url": "/f/1/"}]},
}


def make() -> tuple[Request, list[dict[str, Any]]]:
    sent: list[dict[str, Any]] = []

    async def send(frame: dict[str, Any]) -> None:
        sent.append(frame)

    return Request(FRAME, space="Echo", hub="http://127.0.0.1:8000", send=send), sent


async def test_it_exposes_the_request_frame() -> None:
    request, _ = make()

    assert (request.id, request.attempt, request.prompt) == ("r1", 2, "hi")
    assert request.deadline is not None and request.deadline.isoformat() == "2026-01-01T12:02:00+00:00"
    assert request.file("files", 0)["name"] == "a.txt"
    assert request._file_url("files", 0) == "http://127.0.0.1:8000/f/1/"
    with pytest.raises(ClientError, match="no index 3"):
        request.file("files", 3)
    with pytest.raises(ClientError, match='no input file "audio"'):
        request.file("audio")


async def test_it_coalesces_a_burst_of_partials_and_keeps_the_order() -> None:
    request, sent = make()

    await request.partial("a")
    for piece in "bcdef":
        await request.partial(piece)
    await request.progress(1.5, "over the top")
    await request._finish({"type": "result", "id": "r1", "outputs": {"text": "abcdef"}})

    kinds = [frame["type"] for frame in sent]
    assert kinds == ["partial", "partial", "progress", "result"]  # five quick pieces went as one frame
    assert "".join(f["text"] for f in sent if f["type"] == "partial") == "abcdef"
    assert sent[2] == {"type": "progress", "id": "r1", "progress": 1.0, "message": "over the top"}


async def test_held_back_text_goes_out_by_itself_shortly() -> None:
    request, sent = make()
    await request.partial("a")
    await request.partial("b")

    await asyncio.sleep(0.1)

    assert [f["text"] for f in sent] == ["a", "b"]


async def test_it_sends_nothing_once_cancelled() -> None:
    request, sent = make()
    await request.partial("a")
    await request.partial("held back")

    request._abandon("cancelled")
    await asyncio.sleep(0.1)

    assert request.cancelled and await request.wait_cancelled() == "cancelled"
    with pytest.raises(RequestCancelled):
        await request.progress(0.5)
    with pytest.raises(RequestCancelled):
        await request.read("files")
    assert [f["text"] for f in sent] == ["a"]


async def test_it_sends_nothing_after_the_answer() -> None:
    request, sent = make()
    await request._finish({"type": "result", "id": "r1", "outputs": {}})

    with pytest.raises(ClientError, match="already been answered"):
        await request.partial("late")
    assert len(sent) == 1


async def test_a_plain_def_handler_reports_from_its_thread_and_stops_on_cancel() -> None:
    request, sent = make()
    sync = SyncRequest(request, asyncio.get_running_loop())

    def handler(step: int) -> None:
        sync.progress(0.5, "half")
        if step == 2:
            sync.partial("x")

    await in_thread(handler, 1)
    request._abandon("timeout")
    with pytest.raises(RequestCancelled):
        await in_thread(handler, 2)

    assert sent == [{"type": "progress", "id": "r1", "progress": 0.5, "message": "half"}]
    assert sync.cancelled and sync.cancel_reason == "timeout" and sync.wait_cancelled(0)


async def test_sync_helpers_refuse_to_block_the_event_loop() -> None:
    request, _ = make()
    sync = SyncRequest(request, asyncio.get_running_loop())

    with pytest.raises(RuntimeError, match="await the Request"):
        sync.progress(0.1)

"""Handlers run in-process against a live hub: async and plain def, results, errors, files."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from relay.client import App, Request, SyncRequest
from tests.client.conftest import submit, submit_files, wait_status
from tests.live import Daphne, WebUser

pytestmark = [pytest.mark.e2e, pytest.mark.hubs(1)]

Serving = Callable[[App], Awaitable[App]]


@pytest.fixture
def files_space(make_space: Any) -> tuple[Any, str]:
    return make_space("Files", feature_files=True, feature_audio=True)


async def run_one(web: WebUser, slug: str, prompt: str) -> dict[str, Any]:
    request_id = await asyncio.to_thread(submit, web, slug, prompt)
    return await asyncio.to_thread(wait_status, web, request_id)


async def test_it_serves_an_async_handler_with_progress_partials_and_files(
    hub: Daphne, web: WebUser, echo: tuple[Any, str], serving: Serving
) -> None:
    space, token = echo
    app = App(hub.http, "Echo", token)
    seen: list[Request] = []

    @app.handler
    async def predict(request: Request) -> dict[str, Any]:
        seen.append(request)
        await request.progress(0.3, "loading")
        for word in ("one ", "two ", "three"):
            await request.partial(word)
        return {"text": "one two three", "files": [("out.txt", b"x" * 3000, "text/plain"), ("b.bin", b"\0\1")]}

    await serving(app)
    body = await run_one(web, space.slug, "count")

    assert body["status"] == "succeeded", body
    assert body["text"] == "one two three"
    files = body["outputs"]["files"]
    assert [(f["name"], f["content_type"], f["size"]) for f in files] == [
        ("out.txt", "text/plain", 3000),
        ("b.bin", "application/octet-stream", 2),
    ]
    assert seen[0].inputs == {"prompt": "count"} and seen[0].attempt == 1 and seen[0].deadline is not None


async def test_it_serves_a_plain_def_handler_in_a_thread(
    hub: Daphne, web: WebUser, echo: tuple[Any, str], serving: Serving
) -> None:
    space, token = echo
    threads: list[str] = []

    def predict(request: SyncRequest) -> str:
        import threading

        threads.append(threading.current_thread().name)
        request.progress(0.5, "half way")
        request.partial("streamed ")
        time.sleep(0.1)  # blocking is fine here: the event loop keeps answering the hub
        return f"echo: {request.prompt}"

    await serving(App(hub.http, "Echo", token, predict))
    body = await run_one(web, space.slug, "hi")

    assert body["status"] == "succeeded", body
    assert body["outputs"] == {"text": "echo: hi", "files": []}
    assert threads and threads[0] != "MainThread"


@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_it_turns_an_exception_into_an_app_error(
    hub: Daphne, web: WebUser, echo: tuple[Any, str], serving: Serving, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    space, token = echo

    def fail(request: Any) -> None:
        raise RuntimeError(f"model failed: out of memory ({request.prompt})")

    async def afail(request: Any) -> None:
        fail(request)

    app = await serving(App(hub.http, "Echo", token, afail if kind == "async" else fail))
    body = await run_one(web, space.slug, "big")

    assert body["status"] == "failed"
    assert body["error"] == {"code": "app_error", "message": "model failed: out of memory (big)"}
    assert "failed in" in caplog.text and "RuntimeError" in caplog.text  # with its traceback
    # The app stays up and serves the next request.
    app.handler(lambda request: "fine")
    assert (await run_one(web, space.slug, "next"))["status"] == "succeeded"


async def test_it_answers_an_error_for_a_result_over_the_frame_limit(
    hub: Daphne, web: WebUser, echo: tuple[Any, str], serving: Serving
) -> None:
    space, token = echo

    async def huge(request: Request) -> dict[str, Any]:
        return {"files": [("big.bin", b"\0" * 900_000)]}

    await serving(App(hub.http, "Echo", token, huge))
    body = await run_one(web, space.slug, "big")

    assert body["status"] == "failed"
    assert body["error"]["code"] == "app_error"
    assert "1024 KiB" in body["error"]["message"]


async def test_it_reads_and_downloads_input_files(
    hub: Daphne, web: WebUser, files_space: tuple[Any, str], serving: Serving, tmp_path: Path
) -> None:
    space, token = files_space
    got: dict[str, Any] = {}

    async def handle(request: Request) -> str:
        got["audio"] = await request.read("audio")
        got["second"] = await request.read("files", 1)
        got["path"] = await request.download("files", tmp_path / "in", 0)
        return "ok"

    await serving(App(hub.http, "Files", token, handle))
    request_id = await asyncio.to_thread(
        submit_files,
        web,
        space.slug,
        "files please",
        [
            ("audio", "a.wav", "audio/wav", b"RIFF" + b"\1" * 100),
            ("files", "first.txt", "text/plain", b"first"),
            ("files", "second.npy", "application/octet-stream", b"\2" * 70_000),
        ],
    )
    body = await asyncio.to_thread(wait_status, web, request_id)

    assert body["status"] == "succeeded", body
    assert got["audio"] == b"RIFF" + b"\1" * 100
    assert got["second"] == b"\2" * 70_000
    assert got["path"] == tmp_path / "in" / "first.txt"
    assert got["path"].read_bytes() == b"first"

"""The mock app (`python -m relay.client`) against a live hub."""

from collections.abc import Callable
from typing import Any

import pytest

from tests.client.conftest import MockApp, submit, submit_files, wait_connected, wait_status
from tests.live import Daphne, WebUser

pytestmark = [pytest.mark.e2e, pytest.mark.hubs(1)]


def test_it_serves_several_requests_in_order(
    hub: Daphne, web: WebUser, make_space: Any, mock_app: Callable[..., MockApp]
) -> None:
    space, token = make_space("Echo")
    app = mock_app(hub, [("Echo", token)], "--delay", "0.1")
    wait_connected(hub, space.slug)

    ids = [submit(web, space.slug, f"prompt number {n}") for n in range(3)]
    states = [wait_status(web, request_id) for request_id in ids]

    for n, body in enumerate(states):
        assert body["status"] == "succeeded", body
        assert body["outputs"]["text"] == f'You said: "prompt number {n}".'
        assert body["text"] == body["outputs"]["text"]
        assert body["progress"] == 1.0
    started = [body["started_at"] for body in states]
    assert started == sorted(started)
    log = app.output()
    assert all(f"request {request_id} succeeded in" in log for request_id in ids), log


def test_it_describes_the_files_it_received(
    hub: Daphne, web: WebUser, make_space: Any, mock_app: Callable[..., MockApp]
) -> None:
    space, token = make_space("Files", feature_files=True, feature_audio=True)
    mock_app(hub, [("Files", token)], "--delay", "0")
    wait_connected(hub, space.slug)

    request_id = submit_files(
        web,
        space.slug,
        "listen",
        [
            ("audio", "a.wav", "audio/wav", b"RIFF" + b"\0" * 996),
            ("files", "notes.txt", "text/plain", b"hello"),
            ("files", "table.csv", "text/csv", b"a,b\n1,2\n"),
        ],
    )
    body = wait_status(web, request_id)

    assert body["status"] == "succeeded", body
    assert body["outputs"]["text"] == (
        'You said: "listen". I received audio a.wav (audio/wav, 1000 bytes received); '
        "files notes.txt (text/plain, 5 bytes received); files table.csv (text/csv, 8 bytes received)."
    )


def test_it_serves_several_spaces_from_one_process(
    hub: Daphne, web: WebUser, make_space: Any, mock_app: Callable[..., MockApp]
) -> None:
    one, one_token = make_space("One")
    two, two_token = make_space("Two")
    app = mock_app(hub, [("One", one_token), ("Two", two_token)], "--delay", "0")
    wait_connected(hub, one.slug)
    wait_connected(hub, two.slug)

    first, second = submit(web, one.slug, "to one"), submit(web, two.slug, "to two")

    assert wait_status(web, first)["outputs"]["text"] == 'You said: "to one".'
    assert wait_status(web, second)["outputs"]["text"] == 'You said: "to two".'
    out = app.output()
    assert f"[One] request {first} succeeded" in out and f"[Two] request {second} succeeded" in out


def test_it_takes_a_single_token_from_the_environment_and_logs_frames_when_verbose(
    hub: Daphne, web: WebUser, make_space: Any, mock_app: Callable[..., MockApp]
) -> None:
    space, token = make_space("Echo")
    app = mock_app(hub, [("Echo", "")], "--delay", "0", "--verbose", env={"SPACEHUB_TOKEN": token})
    wait_connected(hub, space.slug)

    assert wait_status(web, submit(web, space.slug, "hi"))["status"] == "succeeded"
    out = app.wait_output('"type": "result"')
    assert '[Echo] -> {"type": "register"' in out
    assert token not in out  # the verbose log hides the token
    assert '[Echo] <- {"type": "request"' in out
    assert '"type": "partial"' in out and '"type": "progress"' in out


def test_it_fails_on_purpose_when_asked(
    hub: Daphne, web: WebUser, make_space: Any, mock_app: Callable[..., MockApp]
) -> None:
    space, token = make_space("Echo")
    mock_app(hub, [("Echo", token)], "--delay", "0")
    wait_connected(hub, space.slug)

    body = wait_status(web, submit(web, space.slug, "!fail the GPU caught fire"))

    assert body["status"] == "failed"
    assert body["error"] == {"code": "app_error", "message": "the GPU caught fire"}

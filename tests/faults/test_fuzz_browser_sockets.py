"""Fuzz the browser sockets in-process: what a browser sends is ignored (a ping gets a pong), the stream
goes on unharmed, and a path or a session that is not right is refused, never an exception."""

import json
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from hypothesis import example, given
from hypothesis import strategies as st

from relay import queue
from relay.events import publish
from spacehub.asgi import application
from tests.faults import fuzz
from tests.relay.conftest import ORIGIN, session_headers

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fresh_channel_layer")]

browser_frames = fuzz.frames | st.sampled_from(
    [("json", {"type": "ping"}), ("text", '{"type":"ping"}'), ("json", {"type": "ping", "pad": "x" * 200})]
)


def is_ping(text: str | None) -> bool:
    try:
        return json.loads(text or "") == {"type": "ping"}
    except (ValueError, RecursionError):
        return False


@pytest.fixture
async def running(make_space: Any, alice: Any) -> Any:
    """A request in flight on an app (in-process), and the app's communicator to stream into it."""
    space, token = await database_sync_to_async(make_space)("Echo")
    app = WebsocketCommunicator(application, "/ws/apps/")
    await app.connect()
    await app.send_to(text_data=json.dumps({"type": "register", "space": "Echo", "token": token}))
    await app.receive_output(5)
    await publish(await database_sync_to_async(queue.enqueue)(space, alice, {"prompt": "x"}))
    request = json.loads((await app.receive_output(5))["text"])
    yield app, request["id"]
    await app.disconnect()


@fuzz.FUZZ
@given(sent=st.lists(browser_frames, min_size=1, max_size=6), route=st.sampled_from(["request", "space"]))
async def test_what_a_browser_sends_is_ignored_and_the_stream_goes_on(
    running: Any, alice: Any, sent: list[Any], route: str
) -> None:
    app, request_id = running
    path = f"/ws/requests/{request_id}/" if route == "request" else "/ws/spaces/echo/"
    browser = WebsocketCommunicator(application, path, headers=await session_headers(alice))
    assert (await browser.connect())[0]
    assert json.loads((await browser.receive_output(5))["text"])["type"] in ("state", "space")
    for kind, value in sent:
        text, data = fuzz.encode(kind, value, {fuzz.INFLIGHT: request_id})
        await browser.send_input(
            {"type": "websocket.receive", **({"text": text} if text is not None else {"bytes": data})}
        )
        if is_ping(text):
            assert json.loads((await browser.receive_output(5))["text"]) == {"type": "pong"}
        else:
            while not await browser.receive_nothing(0.02):  # a ping-like text may get a pong; nothing else
                assert json.loads((await browser.receive_output(1))["text"]) == {"type": "pong"}
    if route == "request":
        await app.send_to(text_data=json.dumps({"type": "partial", "id": request_id, "text": "still here"}))
        frame = json.loads((await browser.receive_output(5))["text"])
        assert frame == {"type": "partial", "text": "still here"}, "the stream goes on"
    await browser.disconnect()


segments = st.text(fuzz.SAFE_CHARS, min_size=1, max_size=30).filter(lambda s: "/" not in s and "?" not in s)


@fuzz.FUZZ
@given(
    path=st.one_of(
        segments.map(lambda s: f"/ws/requests/{s}/"),
        segments.map(lambda s: f"/ws/spaces/{s}/"),
        segments.map(lambda s: f"/ws/{s}/"),
        st.just("/ws/requests/00000000-0000-0000-0000-000000000000/"),
    ),
    cookie=st.sampled_from(["", "sessionid=forged", "sessionid=" + "x" * 4000, "csrftoken=a; sessionid="]),
)
@example(path="/ws/nowhere/", cookie="")
async def test_a_wrong_path_or_session_is_refused_at_the_handshake(
    transactional_db: Any, path: str, cookie: str
) -> None:
    headers = [ORIGIN] + ([(b"cookie", cookie.encode())] if cookie else [])
    browser = WebsocketCommunicator(application, path, headers=headers)
    connected, code = await browser.connect(timeout=5)
    if connected:
        out = await browser.receive_output(5)
        if out["type"] == "websocket.send":  # an existing public space: fine, and nothing more
            assert json.loads(out["text"])["type"] == "space"
            await browser.disconnect()
            return
        code = out["code"]
    assert code in (1000, 4403, 4404, None) or not connected, (path, code)

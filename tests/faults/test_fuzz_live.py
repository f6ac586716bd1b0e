"""A short fuzz run against live daphne: the same judged frames as the in-process fuzz, over a real
socket, plus what only the wire can carry (invalid UTF-8, binary frames). The hub answers or closes,
never dies, and the people next to the fuzzer are served as usual."""

import asyncio
import contextlib
import json
from typing import Any

import pytest
import websockets
from asgiref.sync import sync_to_async
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.faults import fuzz
from tests.faults.peers import (
    answer_of,
    closed,
    connect,
    recv,
    register,
    register_when_free,
    serve,
    submit,
    wait_status,
)
from tests.live import Daphne, WebUser

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def spaces(make_space: Any) -> dict[str, str]:
    return {name: make_space(name)[1] for name in ("Echo", "Calm")}


async def reply_codes(ws: Any, pongs: int) -> list[str]:
    """Ping, then the error codes that came before `pongs` pongs."""
    await ws.send('{"type": "ping"}')
    codes = []
    while pongs:
        frame = await recv(ws, timeout=10)
        if frame["type"] == "pong":
            pongs -= 1
        else:
            assert frame["type"] == "error", frame
            codes.append(frame["code"])
    return codes


@settings(fuzz.FUZZ, max_examples=min(fuzz.EXAMPLES, 12))
@given(sent=st.lists(fuzz.frames, min_size=1, max_size=6))
async def test_live_frames_get_the_contract_s_answers(
    live: list[Daphne], spaces: dict[str, str], alice: Any, sent: list[Any]
) -> None:
    a, b = live
    web = await sync_to_async(WebUser)(b, alice)
    app, _ = await register(a, "Echo", spaces["Echo"])
    request_id = await submit(web, "echo", "fuzz")
    assert (await recv(app, "request"))["id"] == request_id
    ended = False
    for kind, value in sent:
        text, data = fuzz.encode(kind, value, {fuzz.INFLIGHT: request_id, fuzz.UNKNOWN: "nope"})
        verdict = fuzz.judge(text, request_id, ended)
        await app.send(text if text is not None else data)
        codes = await reply_codes(app, 1 + verdict.pongs)
        answer = codes[0] if codes else "ok"
        assert len(codes) <= 1 and answer in verdict.allowed, f"{text!r:.200}: {codes}, allowed {verdict.allowed}"
        ended = ended or (answer == "ok" and bool(verdict.ends))
    if not ended:
        await asyncio.to_thread(web.request, "POST", f"/api/requests/{request_id}/cancel/")
    await app.close()


async def test_invalid_utf8_and_binary_frames_close_or_are_refused_and_nobody_else_notices(
    live: list[Daphne], spaces: dict[str, str], alice: Any
) -> None:
    a, b = live
    web = await sync_to_async(WebUser)(b, alice)
    calm, _ = await register(a, "Calm", spaces["Calm"])  # a neighbour on the same process
    serving = asyncio.create_task(serve(calm))

    app, _ = await register(a, "Echo", spaces["Echo"])
    await app.send(b"\x00\xffbinary")
    assert await reply_codes(app, 1) == ["bad_message"], "a binary frame is refused, the connection stays"
    await app.send(b'{"type": "ping", "x": "\xff\xfe"}', text=True)
    assert await closed(app) in (1006, 1007), "invalid UTF-8 in a text frame fails the connection"

    unregistered = await connect(f"{a.ws}/ws/apps/")
    await unregistered.send(b"\xc3\x28", text=True)
    assert await closed(unregistered) in (1006, 1007)
    for path in ("/ws/spaces/echo/", f"/ws/requests/{await submit(web, 'calm', 'watched')}/"):
        browser = await connect(f"{b.ws}{path}", additional_headers=web.ws_headers())
        await browser.recv()
        with contextlib.suppress(websockets.ConnectionClosed):  # the stream may have ended already (1000)
            await browser.send(b"\xed\xa0\x80", text=True)  # an encoded surrogate: not UTF-8
        assert await closed(browser) in (1000, 1006, 1007)

    again = await register_when_free(a, "Echo", spaces["Echo"], timeout=5)  # the failed connection let it go
    request_id = await submit(web, "calm", "still served")
    assert (await wait_status(web, request_id, {"succeeded"}))["text"] == answer_of("still served")
    status, health = await asyncio.to_thread(web.request, "GET", "/healthz")
    assert (status, health["status"]) == (200, "ok")
    await again.close()
    await calm.close()
    await serving


@pytest.mark.hubs(1)
async def test_a_lone_surrogate_in_a_frame_type_is_answered_not_fatal(hubs: list[Daphne], make_space: Any) -> None:
    """Escaped, it is plain ASCII on the wire, so any app can send it; only a live daphne encodes the answer."""
    (hub,) = hubs
    _, token = await sync_to_async(make_space)("Echo")
    app, _ = await register(hub, "Echo", token)
    await app.send(json.dumps({"type": "\ud800"}))
    assert await reply_codes(app, 1) == ["bad_message"]
    await app.close()

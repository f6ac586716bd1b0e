"""Hub processes that die (kill -9), stop (SIGTERM) or freeze (SIGSTOP) under apps and browsers.

Each test starts its own pair of daphne processes, a and b, and breaks a. What a serves moves to
b the way it would behind nginx: apps and browsers connect again, to b.
"""

import asyncio
import json
import signal
import time
from typing import Any

import pytest
import websockets
from asgiref.sync import sync_to_async

from bench.soak import nothing_lost
from tests.faults.peers import (
    Follower,
    answer,
    answer_of,
    closed,
    recv,
    register,
    register_when_free,
    serve,
    state,
    submit,
    wait_status,
)
from tests.live import Daphne, WebUser

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True), pytest.mark.hubs(2)]

LEASE_LAPSE_SECONDS = 20  # docs/protocol.md: a lease lasts 20 s unless renewed (the contract allows 30)
SWEEP_SECONDS = 2 + 5 * 1.2  # the sweep's grace after a deadline, plus its longest interval


@pytest.fixture
def web(hubs: list[Daphne], alice: Any) -> WebUser:
    return WebUser(hubs[1], alice)


async def test_a_kill_9_of_a_hub_process_loses_no_request(hubs: list[Daphne], make_space: Any, web: WebUser) -> None:
    """Three apps and six browsers on a; kill -9 a; everyone moves to b; every request ends right."""
    a, b = hubs
    tokens = {}
    for n in range(3):
        _, tokens[f"S{n}"] = await sync_to_async(make_space)(f"S{n}")
    apps, running, waiting = {}, {}, {}
    for space in tokens:
        apps[space], _ = await register(a, space, tokens[space])
        running[space] = await submit(web, space.lower(), f"{space} running")
        waiting[space] = await submit(web, space.lower(), f"{space} waiting")
        frame = await recv(apps[space], "request")
        assert frame["id"] == running[space]
        await apps[space].send(json.dumps({"type": "partial", "id": frame["id"], "text": "words lost with a "}))
    ids = [*running.values(), *waiting.values()]
    browsers = [await Follower.open(a, web, request_id) for request_id in ids]
    await wait_status(web, running["S2"], {"running"})

    a.kill()
    killed = time.monotonic()
    for ws in [*apps.values(), *(f.ws for f in browsers)]:
        assert await closed(ws) == 1006, "kill -9: the connections drop without a close frame"

    followers = [await Follower.open(b, web, request_id) for request_id in ids]  # the browsers come back to b
    moved = await asyncio.gather(*(register_when_free(b, space, tokens[space], timeout=35) for space in tokens))
    took = time.monotonic() - killed
    assert took < LEASE_LAPSE_SECONDS + 5, f"the dead process's leases lapsed after {took:.1f} s"
    for space, ws in zip(tokens, moved, strict=True):
        again = await recv(ws, "request")
        assert (again["id"], again["attempt"]) == (running[space], 2), "the interrupted request first, sent again"
        await answer(ws, again)
    serving = [asyncio.create_task(serve(ws)) for ws in moved]

    finals = await asyncio.gather(*(f.until_final() for f in followers))
    prompts = {running[s]: f"{s} running" for s in tokens} | {waiting[s]: f"{s} waiting" for s in tokens}
    for follower, request_id in zip(followers, ids, strict=True):
        # The final frame is a result, or a fresh state that already holds it (after a lost event).
        assert follower.status == "succeeded", finals
        assert follower.text == answer_of(prompts[request_id]), "the browser shows its own request's answer"
    for request_id in ids:
        body = await state(web, request_id)
        assert body["attempt"] == (2 if request_id in running.values() else 1)
    assert await sync_to_async(nothing_lost)({k: answer_of(v) for k, v in prompts.items()}) == []
    for ws in moved:
        await ws.close()
    await asyncio.gather(*serving)


async def test_a_sigterm_hands_the_apps_requests_back_at_once(
    hubs: list[Daphne], make_space: Any, web: WebUser
) -> None:
    """Graceful: a stopping process releases its apps' leases and requeues their requests before it exits,
    so the apps register on another process at once, not after the lease lapses (docs/deploy.md)."""
    a, b = hubs
    spaces = [f"G{n}" for n in range(6)]
    tokens = {space: (await sync_to_async(make_space)(space))[1] for space in spaces}
    apps, requests, browsers = [], {}, []
    for space in spaces:
        ws, _ = await register(a, space, tokens[space])
        requests[space] = await submit(web, space.lower(), f"{space} interrupted")
        await recv(ws, "request")
        apps.append(ws)
        browsers.append(await Follower.open(a, web, requests[space]))

    a.stop()
    stopped = time.monotonic()
    assert a.proc is not None and a.proc.returncode == 0, "daphne exits cleanly on SIGTERM"
    for ws in [*apps, *(f.ws for f in browsers)]:
        await closed(ws)
    for space in spaces:
        ws, frame = await register(b, space, tokens[space])
        held = time.monotonic() - stopped
        assert frame["type"] == "registered", f"{space}: still held {held:.1f} s after SIGTERM ({frame})"
        again = await recv(ws, "request")
        assert (again["id"], again["attempt"]) == (requests[space], 2)
        await answer(ws, again)
        assert (await wait_status(web, requests[space], {"succeeded"}))["attempt"] == 2
        await ws.close()


async def test_a_frozen_hub_process_s_request_times_out_on_another_process(
    hubs: list[Daphne], make_space: Any, web: WebUser
) -> None:
    """SIGSTOP the process holding the app: b's sweep still ends the request at its deadline (plus one
    sweep), and when a wakes up the app hears the timeout and the late result is ignored."""
    a, b = hubs
    _, token = await sync_to_async(make_space)("Slow", timeout_seconds=2)
    app, _ = await register(a, "Slow", token)
    request_id = await submit(web, "slow", "stuck")
    # The person's space page on b: its status socket starts b's sweeper (test_sweeper.py: a request
    # stream alone does not).
    page = await websockets.connect(f"{b.ws}/ws/spaces/slow/", additional_headers=web.ws_headers())
    follower = await Follower.open(b, web, request_id)
    frame = await recv(app, "request")
    sent = time.monotonic()
    nxt = await submit(web, "slow", "next")

    assert a.proc is not None
    a.proc.send_signal(signal.SIGSTOP)
    try:
        final = await follower.until_final(timeout=2 + SWEEP_SECONDS + 5)
        ended = time.monotonic() - sent
    finally:
        a.proc.send_signal(signal.SIGCONT)
    assert final["type"] == "error" and final["error"]["code"] == "timed_out", final
    assert ended <= 2 + SWEEP_SECONDS + 1.5, f"ended {ended:.1f} s after it was sent"

    assert await recv(app, "cancel", timeout=10) == {"type": "cancel", "id": request_id, "reason": "timeout"}
    await app.send(json.dumps({"type": "result", "id": frame["id"], "outputs": {"text": "too late"}}))
    again = await recv(app, "request", timeout=10)
    assert again["id"] == nxt, "the woken process goes on with the queue"
    await answer(app, again)
    assert (await wait_status(web, nxt, {"succeeded"}))["text"] == answer_of("next")
    body = await state(web, request_id)
    assert (body["status"], body["outputs"]) == ("timed_out", None)
    await app.close()
    await page.close()

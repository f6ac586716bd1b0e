"""A browser that drops and reconnects mid-stream, on either process, sees every partial exactly once,
in order: each connection's snapshot plus the partials after it is always a prefix of the answer."""

import asyncio
import json
import random
import time
from typing import Any

import pytest
import websockets

from tests.faults.peers import Follower, recv, register, submit, wait_status
from tests.live import Daphne, WebUser

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PIECES = [f"p{n:03d} " for n in range(300)]
WHOLE = "".join(PIECES)


async def stream(app: Any, request_id: str) -> None:
    for piece in PIECES:
        await app.send(json.dumps({"type": "partial", "id": request_id, "text": piece}))
        await asyncio.sleep(0.004)


async def test_a_reconnecting_browser_sees_every_partial_once_in_order(
    live: list[Daphne], make_space: Any, alice: Any
) -> None:
    a, b = live
    from asgiref.sync import sync_to_async

    _, token = await sync_to_async(make_space)("Echo")
    web = await sync_to_async(WebUser)(b, alice)
    app, _ = await register(a, "Echo", token)
    request_id = await submit(web, "echo", "count")
    await recv(app, "request")
    streaming = asyncio.create_task(stream(app, request_id))
    rng = random.Random(8)
    connections = 0
    while not streaming.done():
        hub = (a, b)[connections % 2]
        follower = await Follower.open(hub, web, request_id)
        connections += 1
        end = time.monotonic() + rng.uniform(0.02, 0.3)
        while time.monotonic() < end:
            assert WHOLE.startswith(follower.text), f"connection {connections}: {follower.text[-60:]!r}"
            try:
                await follower.next(timeout=max(0.01, end - time.monotonic()))
            except TimeoutError:
                break
        assert WHOLE.startswith(follower.text), f"connection {connections}: {follower.text[-60:]!r}"
        if connections % 3:
            follower.ws.transport.abort()  # a dropped network: no close frame
        else:
            await follower.close()
    assert connections >= 5, "the browser came and went several times during the stream"

    last = await Follower.open(b, web, request_id)
    await app.send(json.dumps({"type": "result", "id": request_id, "outputs": {"text": WHOLE}}))
    partials = last.text
    while last.final is None:
        frame = await last.next()
        if frame["type"] == "partial":
            partials += frame["text"]
    assert partials == WHOLE, "the last connection's snapshot and partials hold the whole text, once"
    assert (await wait_status(web, request_id, {"succeeded"}))["text"] == WHOLE
    with pytest.raises(websockets.ConnectionClosedOK):
        await last.ws.recv()
    await app.close()

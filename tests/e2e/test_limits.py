"""Limits that the live hub (`python -m spacehub.serve`) enforces: the 1 MiB WebSocket message limit."""

import asyncio
import json
from typing import Any

import pytest
import websockets
from asgiref.sync import sync_to_async

from tests.live import Daphne

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True), pytest.mark.hubs(1)]

MIB = 1024 * 1024


async def register(hub: Daphne, space: str, token: str) -> Any:
    app = await websockets.connect(f"{hub.ws}/ws/apps/", max_size=None)
    await app.send(json.dumps({"type": "register", "space": space, "token": token}))
    assert json.loads(await asyncio.wait_for(app.recv(), 10))["type"] == "registered"
    return app


async def test_it_closes_a_message_over_1_mib_with_1009_and_other_connections_keep_working(
    hub: Daphne, make_space: Any
) -> None:
    _, token = await sync_to_async(make_space)("Echo")
    _, neighbour_token = await sync_to_async(make_space)("Neighbour")
    neighbour = await register(hub, "Neighbour", neighbour_token)  # on the same process throughout
    app = await register(hub, "Echo", token)
    await app.send(json.dumps({"type": "partial", "id": "x", "text": "a" * (MIB + 1)}))
    with pytest.raises(websockets.ConnectionClosed):
        await asyncio.wait_for(app.recv(), 10)
    assert app.close_code == 1009, "a close frame with 1009 (message too big), not a dropped connection"
    assert "exceeds payload limit" in (app.close_reason or "")

    await neighbour.send(json.dumps({"type": "ping"}))
    assert json.loads(await asyncio.wait_for(neighbour.recv(), 10))["type"] == "pong"
    again = await register(hub, "Echo", token)  # the refused connection gave its space back
    await again.send(json.dumps({"type": "ping"}))
    assert json.loads(await asyncio.wait_for(again.recv(), 10))["type"] == "pong"
    for ws in (again, neighbour):
        await ws.close()


async def test_a_message_under_the_limit_is_fine(hub: Daphne, make_space: Any) -> None:
    _, token = await sync_to_async(make_space)("Echo")
    app = await register(hub, "Echo", token)
    await app.send(json.dumps({"type": "partial", "id": "x", "text": "a" * (900 * 1024)}))
    assert json.loads(await asyncio.wait_for(app.recv(), 10))["code"] == "unknown_request"
    await app.close()

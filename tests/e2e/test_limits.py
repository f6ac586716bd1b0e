"""Limits that live daphne enforces: the 1 MiB WebSocket message limit stays on."""

import asyncio
import json
from typing import Any

import pytest
import websockets

from tests.live import Daphne

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True), pytest.mark.hubs(1)]


@pytest.fixture
def token(make_space: Any) -> str:
    return make_space("Echo")[1]


async def test_it_refuses_a_frame_over_1_mib(hub: Daphne, token: str) -> None:
    async with websockets.connect(f"{hub.ws}/ws/apps/", max_size=None) as app:
        await app.send(json.dumps({"type": "register", "space": "Echo", "token": token}))
        assert json.loads(await app.recv())["type"] == "registered"
        await app.send(json.dumps({"type": "partial", "id": "x", "text": "a" * (1024 * 1024 + 1)}))
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(app.recv(), 10)
        # daphne (autobahn, failByDrop) drops the TCP connection: 1009 in the close frame when it
        # gets out first, 1006 when the drop wins. Either way the frame is refused and the hub lives on.
        assert app.close_code in (1006, 1009)
    async with websockets.connect(f"{hub.ws}/ws/apps/") as again:
        await again.send(json.dumps({"type": "register", "space": "Echo", "token": token}))
        assert json.loads(await asyncio.wait_for(again.recv(), 10))["type"] == "registered"


async def test_a_frame_under_the_limit_is_fine(hub: Daphne, token: str) -> None:
    async with websockets.connect(f"{hub.ws}/ws/apps/") as app:
        await app.send(json.dumps({"type": "register", "space": "Echo", "token": token}))
        assert json.loads(await app.recv())["type"] == "registered"
        await app.send(json.dumps({"type": "partial", "id": "x", "text": "a" * (900 * 1024)}))
        assert json.loads(await asyncio.wait_for(app.recv(), 10))["code"] == "unknown_request"

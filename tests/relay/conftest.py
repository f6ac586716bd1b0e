"""Consumer fixtures: the real ASGI application, against the Redis channel layer."""

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.layers import channel_layers, get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client

from spacehub.asgi import application

ORIGIN = (b"origin", b"http://localhost")


@pytest.fixture(autouse=True)
def fresh_channel_layer() -> Any:
    """A channel layer must not outlive its event loop: start each test with a new one."""
    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


class Peer:
    """A WebSocket client of the hub, speaking JSON frames."""

    def __init__(self, path: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        self.comm = WebsocketCommunicator(application, path, headers=headers or [])

    async def connect(self) -> "Peer":
        connected, _ = await self.comm.connect(timeout=5)
        assert connected
        return self

    async def send(self, frame: dict[str, Any]) -> None:
        await self.comm.send_to(text_data=json.dumps(frame))

    async def recv(self, timeout: float = 5) -> dict[str, Any]:
        out = await self.comm.receive_output(timeout)
        assert out["type"] == "websocket.send", out
        return json.loads(out["text"])

    async def recv_type(self, kind: str, timeout: float = 5) -> dict[str, Any]:
        """The next frame of this type, skipping others."""
        while True:
            frame = await self.recv(timeout)
            if frame["type"] == kind:
                return frame

    async def closed(self, timeout: float = 5) -> int:
        """Wait for the close, skipping frames; return the close code."""
        while True:
            out = await self.comm.receive_output(timeout)
            if out["type"] == "websocket.close":
                return int(out.get("code", 1000))

    async def nothing(self, timeout: float = 0.3) -> bool:
        return await self.comm.receive_nothing(timeout)

    async def close(self) -> None:
        await self.comm.disconnect()


async def register(space_name: str, token: str) -> tuple[Peer, dict[str, Any]]:
    app = await Peer("/ws/apps/").connect()
    await app.send({"type": "register", "space": space_name, "token": token})
    return app, await app.recv()


@database_sync_to_async
def session_headers(user: Any) -> list[tuple[bytes, bytes]]:
    client = Client()
    client.force_login(user)
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
    return [(b"cookie", cookie.encode()), ORIGIN]


async def follow(request_id: Any, user: Any) -> Peer:
    return await Peer(f"/ws/requests/{request_id}/", await session_headers(user)).connect()


@pytest.fixture
async def layer() -> AsyncIterator[Any]:
    yield get_channel_layer()


async def members(layer: Any, group: str) -> set[str]:
    """The channels in a group of the layer the consumers use (Redis here; in-memory without services)."""
    if hasattr(layer, "groups"):
        return set(layer.groups.get(group, {}))
    connection = layer.connection(layer.consistent_hash(group))
    return {name.decode() for name in await connection.zrange(layer._group_key(group), 0, -1)}

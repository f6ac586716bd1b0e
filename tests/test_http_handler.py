"""spacehub.http: the HTTP middleware chain runs in one thread hop, not one per middleware method."""

import asyncio
from typing import Any

import pytest
from asgiref import sync
from django.core.handlers.asgi import ASGIHandler

from spacehub.http import HubHTTPHandler

pytestmark = pytest.mark.django_db(transaction=True)


def _get(app: Any, path: str, monkeypatch: pytest.MonkeyPatch) -> tuple[int, int]:
    """Serve one GET through `app`; the response status and how many sync_to_async hops it took."""
    hops = 0
    original = sync.SyncToAsync.__call__

    async def counting(self: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal hops
        hops += 1
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(sync.SyncToAsync, "__call__", counting)
    sent: list[dict[str, Any]] = []
    pending = [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive() -> dict[str, Any]:
        if pending:
            return pending.pop()
        await asyncio.sleep(60)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "query_string": b"",
        "headers": [(b"host", b"localhost")],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 80),
    }
    asyncio.run(app(scope, receive, send))
    monkeypatch.setattr(sync.SyncToAsync, "__call__", original)
    return sent[0]["status"], hops


def test_it_serves_a_page_in_a_few_hops_where_django_s_own_handler_takes_many(
    make_space: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_space("Echo")
    status, hops = _get(HubHTTPHandler(), "/api/spaces/echo/", monkeypatch)
    default_status, default_hops = _get(ASGIHandler(), "/api/spaces/echo/", monkeypatch)
    assert status == default_status == 200
    # request_started's two receivers, the chain, ServeStatic's async boundary inside it, response.close
    assert hops <= 6, hops
    assert default_hops >= 3 * hops, (hops, default_hops)


def test_the_asgi_application_uses_it() -> None:
    from spacehub.asgi import django_asgi_app

    assert isinstance(django_asgi_app, HubHTTPHandler)

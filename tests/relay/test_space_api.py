"""GET /api/spaces/<slug>/ and GET /healthz."""

from typing import Any

from django.test import Client

from tests.relay.helpers import connect_app, submit


def test_it_describes_a_space_to_anyone(client: Client, make_space: Any, alice: Any) -> None:
    space, _ = make_space("Echo", feature_video=True)
    assert client.get("/api/spaces/echo/").json() == {
        "slug": "echo",
        "name": "Echo",
        "title": "Echo",
        "connected": False,
        "queue_size": 0,
        "features": {"prompt": True, "audio": False, "video": True, "files": False},
        "timeout_seconds": 120,
        "max_upload_mb": 25,
    }
    connect_app(space)
    submit(space, alice)
    body = client.get("/api/spaces/echo/").json()
    assert (body["connected"], body["queue_size"]) == (True, 1)


def test_it_404s_for_unknown_and_inactive_spaces(client: Client, make_space: Any) -> None:
    make_space("Off", is_active=False)
    for slug in ("off", "nope"):
        response = client.get(f"/api/spaces/{slug}/")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"


def test_health_is_ok_when_database_and_layer_answer(client: Client, db: Any) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "channel_layer": "ok"}


def test_health_is_503_when_the_channel_layer_does_not_answer(client: Client, db: Any, settings: Any) -> None:
    from channels.layers import channel_layers

    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [{"address": "redis://127.0.0.1:1/0", "socket_timeout": 1}]},
        }
    }
    channel_layers.backends.clear()
    response = client.get("/healthz")
    channel_layers.backends.clear()
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "error" and body["database"] == "ok"
    assert body["channel_layer"].startswith("error")

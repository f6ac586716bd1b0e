"""SpaceHub as operators run it: Debian's nginx, rendered from deploy/nginx.conf, in front of two daphne
processes (--proxy-headers, HTTPS=1, X-Accel-Redirect) sharing PostgreSQL and Redis.

nginx terminates TLS with a throwaway certificate that this process and the mock app trust through
SSL_CERT_FILE, so the secure-cookie, CSRF-origin and X-Forwarded-Proto paths are the production ones.
"""

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets
from django.conf import settings
from django.core.files.base import ContentFile

from deploy.render_nginx import render
from relay import files
from relay.models import AppLease, InferenceRequest, RequestFile, Status
from spaces.models import Space
from tests import settings as test_settings
from tests.e2e.nginx import NGINX, Nginx, multipart, raw, wait_for
from tests.live import ROOT, Daphne, WebUser, running_hubs

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not Path(NGINX).exists() and not test_settings.REQUIRE, reason="needs nginx (see README)"),
]


# --- the configuration alone ------------------------------------------------------------------------


def test_it_renders_a_config_that_nginx_accepts(tmp_path: Path) -> None:
    upstreams = ["127.0.0.1:8001", "10.0.0.12:8001", "unix:/run/spacehub/daphne-8003.sock"]
    result = Nginx(tmp_path, upstreams, tmp_path / "static", tmp_path / "media").check()
    assert result.returncode == 0, result.stderr
    assert "syntax is ok" in result.stderr


def test_it_renders_the_production_defaults() -> None:
    args = ["--server-name", "hub.example.org", "--upstream", "127.0.0.1:8001", "--upstream", "127.0.0.1:8002"]
    args += ["--static-root", "/srv/s/static/", "--media-root", "/srv/s/media"]
    result = subprocess.run(
        [sys.executable, "deploy/render_nginx.py", *args], cwd=ROOT, capture_output=True, text=True, check=True
    )
    site = "\n".join(line for line in result.stdout.splitlines() if not line.lstrip().startswith("#"))
    assert not re.search(r"@[A-Z_]+@", site), "every placeholder is filled"
    assert re.findall(r"server (\S+) max_fails", site) == ["127.0.0.1:8001", "127.0.0.1:8002"]
    assert re.findall(r"listen (.+);", site) == ["80", "[::]:80", "443 ssl", "[::]:443 ssl"]
    assert "ssl_certificate /etc/letsencrypt/live/hub.example.org/fullchain.pem;" in site
    assert "client_max_body_size 26m;" in site
    assert "alias /srv/s/static/;" in site
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in site


def test_it_refuses_to_render_with_a_placeholder_left_out() -> None:
    with pytest.raises(ValueError, match="no value for @MEDIA_ROOT@"):
        render("alias @MEDIA_ROOT@/;\nserver @UPSTREAM@;\n", {"UPSTREAM": ["127.0.0.1:8001"]})
    with pytest.raises(ValueError, match="the template has no @TLS_KEY@"):
        render("server @UPSTREAM@;\n", {"UPSTREAM": ["127.0.0.1:8001"], "TLS_KEY": ["key.pem"]})
    result = subprocess.run(
        [sys.executable, "deploy/render_nginx.py", "--server-name", "hub.example.org"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2 and "--upstream" in result.stderr


# --- the whole hub behind it ------------------------------------------------------------------------

HUB_ENV = {
    "HTTPS": "1",
    "RELAY_ACCEL_REDIRECT_PREFIX": "/media/",
    "METRICS_ALLOWED_IPS": "203.0.113.7",  # a test address: only a forged X-Forwarded-For claims it
    "ALLOWED_HOSTS": "127.0.0.1,localhost",
}
# Half a second per request, so that the restart finds one running; no grace when the app stops.
MOCK_ARGS = ("--delay", "0.5", "--grace", "0")


@pytest.fixture
def stack(
    tmp_path: Path, transactional_db: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Nginx, list[Daphne]]]:
    if not (test_settings.HAVE_POSTGRES and test_settings.HAVE_REDIS):
        pytest.skip("needs PostgreSQL and Redis (see README)")
    with running_hubs(tmp_path, 2, daphne_args=("--proxy-headers",), **HUB_ENV) as hubs:
        (tmp_path / "nginx").mkdir()
        upstreams = [f"127.0.0.1:{hub.port}" for hub in hubs]
        front = Nginx(tmp_path / "nginx", upstreams, Path(settings.STATIC_ROOT), Path(settings.MEDIA_ROOT))
        monkeypatch.setenv("SSL_CERT_FILE", str(front.cert))
        front.start()
        try:
            yield front, hubs
        finally:
            front.stop()
    for hub in hubs:
        assert "Traceback" not in hub.log(), f"{hub.name} logged an exception:\n{hub.log()[-4000:]}"


def test_it_serves_the_whole_hub_through_nginx(
    stack: tuple[Nginx, list[Daphne]], make_space: Any, alice: Any, bob: Any, staff: Any, tmp_path: Path
) -> None:
    front, hubs = stack
    _, token = make_space("Echo", feature_files=True, max_upload_mb=1)
    web, other, sam = WebUser(front, alice), WebUser(front, bob), WebUser(front, staff)  # type: ignore[arg-type]

    check_front_door(front, hubs, web, sam)
    check_media(front, web, other, alice)
    app = start_mock_app(front, token, tmp_path / "mock-app.log")
    try:
        wait_for(lambda: connected(web), 20, "the mock app did not connect through nginx")
        check_uploads(front, web)
        check_restart(hubs, web)
        status, _, metrics = raw(f"{front.http}/metrics", sam.headers())
        assert status == 200
        assert 'spacehub_app_connected{space="Echo"} 1.0' in metrics.decode()
        # A submission whose answer the dying process cut (502) may have been committed and retried:
        # the metric must agree with the database, whatever the count.
        succeeded = InferenceRequest.objects.filter(space__name="Echo", status=Status.SUCCEEDED).count()
        assert succeeded >= 7
        assert f'spacehub_requests_total{{space="Echo",status="succeeded"}} {succeeded}.0' in metrics.decode()
    finally:
        app.send_signal(signal.SIGTERM)
        app.wait(10)


def check_front_door(front: Nginx, hubs: list[Daphne], web: WebUser, sam: WebUser) -> None:
    """TLS and its redirect, HSTS, static files from nginx, and /metrics closed to the public."""
    status, headers, _ = raw(f"{front.plain}/spaces/echo/")
    assert (status, headers["Location"]) == (301, "https://127.0.0.1/spaces/echo/")
    status, headers, page = raw(f"{front.http}/spaces/echo/")
    assert status == 200, page[:500]
    assert "max-age=31536000" in headers["Strict-Transport-Security"]
    status, headers, css = raw(f"{front.http}/static/spacehub/spacehub.css")
    assert (status, "Expires" in headers) == (200, True), "nginx serves /static/ itself"
    assert css == (Path(settings.STATIC_ROOT) / "spacehub/spacehub.css").read_bytes()

    assert raw(f"{front.http}/metrics")[0] == 403
    assert raw(f"{front.http}/metrics", {"X-Forwarded-For": "203.0.113.7"})[0] == 403, "nginx overwrites it"
    assert raw(f"{hubs[0].http}/metrics", {"X-Forwarded-For": "203.0.113.7"})[0] == 200, "daphne believes it"
    assert raw(f"{front.http}/metrics", web.headers())[0] == 403, "alice is not staff"
    status, headers, metrics = raw(f"{front.http}/metrics", sam.headers())
    assert status == 200 and b'spacehub_app_connected{space="Echo"} 0.0' in metrics


def check_media(front: Nginx, web: WebUser, other: WebUser, alice: Any) -> None:
    """Input (signed URL) and result (the owner's session) files pass the hub's check, then nginx sends them."""
    req = InferenceRequest.objects.create(space=Space.objects.get(name="Echo"), user=alice, inputs={})
    record = RequestFile(request=req, role="input", field="files", name="in.txt", content_type="text/plain", size=6)
    record.file.save("upload", ContentFile(b"input\n"))
    result = RequestFile(request=req, role="output", name="out.html", content_type="text/html", size=14)
    result.file.save("result", ContentFile(b"<b>result</b>\n"))

    link = f"{front.http}/relay/files/{files.sign_input(record)}/"
    status, headers, data = raw(link)
    assert (status, data) == (200, b"input\n")
    assert headers["Content-Type"].startswith("text/plain")
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert "X-Accel-Redirect" not in headers
    assert raw(link[:-1] + "x/")[0] == 404, "a tampered signature"

    path = f"{front.http}/api/requests/{req.id}/files/{result.id}/"
    status, headers, data = raw(path, web.headers())
    assert (status, data) == (200, b"<b>result</b>\n")
    assert headers["Content-Disposition"] == 'attachment; filename="out.html"'
    assert "sandbox" in headers["Content-Security-Policy"]
    assert raw(path, other.headers())[0] == 404, "not bob's"

    assert (Path(settings.MEDIA_ROOT) / record.file.name).exists()
    assert raw(f"{front.http}/media/{record.file.name}")[0] == 404, "media is never public"
    assert raw(f"{front.http}/media/{result.file.name}", web.headers())[0] == 404
    status, state = post(web, f"/api/requests/{req.id}/cancel/", b"", "application/json")
    assert (status, state["status"]) == (200, "cancelled")
    assert raw(link)[0] == 404, "links die with the request"


def check_uploads(front: Nginx, web: WebUser) -> None:
    """A browser-like client submits with a file and follows the answer; both size limits answer JSON."""
    upload = b"hello from a file\n" * 1000
    body, content_type = multipart({"prompt": "with a file"}, [("files", "notes.txt", upload, "text/plain")])
    status, created = post(web, "/spaces/echo/requests/", body, content_type)
    assert status == 201, created
    frames = asyncio.run(follow(front, web, created["stream"]))
    assert frames[0]["type"] == "state" and frames[-1]["type"] == "result", frames[-1]
    assert f"files notes.txt (text/plain, {len(upload)} bytes received)" in frames[-1]["outputs"]["text"]

    body, content_type = multipart({"prompt": "x"}, [("files", "big.txt", b"x" * 1_500_000, "text/plain")])
    status, refusal = post(web, "/spaces/echo/requests/", body, content_type)
    assert (status, refusal["error"]["code"]) == (413, "too_large"), "the space's limit, from the hub"
    body, content_type = multipart({"prompt": "x"}, [("files", "huge.txt", b"x" * 3_000_000, "text/plain")])
    status, refusal = post(web, "/spaces/echo/requests/", body, content_type)
    assert (status, refusal["error"]["code"]) == (413, "too_large"), "nginx's limit, in the hub's words"


def check_restart(hubs: list[Daphne], web: WebUser) -> None:
    """SIGTERM the process that holds the app, with requests queued, running and arriving meanwhile."""
    lease = AppLease.objects.get(space__name="Echo", released_at__isnull=True)
    stopped = holder(hubs, lease.connection_id)
    prompts = [f"before-{n}" for n in range(4)] + [f"during-{n}" for n in range(2)]
    ids = [submit(web, prompt)[1]["id"] for prompt in prompts[:4]]
    stopper = threading.Thread(target=stopped.stop)
    stopper.start()
    ids += [submit_until_accepted(web, prompt) for prompt in prompts[4:]]
    stopper.join()
    assert stopped.proc is not None and stopped.proc.poll() is not None

    for request_id, prompt in zip(ids, prompts, strict=True):
        state = wait_for(lambda i=request_id: final_state(web, i), 40, f"{request_id} did not finish")
        assert (state["status"], state["text"]) == ("succeeded", f'You said: "{prompt}".')
    new_lease = AppLease.objects.get(space__name="Echo", released_at__isnull=True)
    survivor = next(hub for hub in hubs if hub is not stopped)
    assert holder(hubs, new_lease.connection_id) is survivor, "the app came back, through nginx, to the other"

    logs = "".join(hub.log() for hub in hubs)
    for row in InferenceRequest.objects.filter(space__name="Echo"):
        assert row.status in (Status.SUCCEEDED, Status.CANCELLED), row
        ends = re.findall(rf"event=request\.(?:finished|timed_out) id={row.id} ", logs)
        assert len(ends) == 1, f"{row.id} ended {len(ends)} times"


# --- helpers --------------------------------------------------------------------------------------


def post(web: WebUser, path: str, body: bytes, content_type: str) -> tuple[int, Any]:
    """A browser's POST over HTTPS: Django's CSRF check wants an Origin (or a Referer) there."""
    return web.request("POST", path, body, **{"Content-Type": content_type, "Origin": web.hub.http})


def submit(web: WebUser, prompt: str) -> tuple[int, Any]:
    return post(web, "/spaces/echo/requests/", f"prompt={prompt}".encode(), "application/x-www-form-urlencoded")


def submit_until_accepted(web: WebUser, prompt: str, timeout: float = 40) -> str:
    """What a person does while the app reconnects: try again until the hub takes it."""
    end = time.monotonic() + timeout
    while True:
        status, body = submit(web, prompt)
        if status == 201:
            return str(body["id"])
        assert status in (409, 429, 502), (status, body)  # no app yet, my queue full, process gone
        assert time.monotonic() < end, f"not accepted within {timeout} s: {status} {body}"
        time.sleep(0.2)


def final_state(web: WebUser, request_id: str) -> dict[str, Any] | None:
    status, body = web.request("GET", f"/api/requests/{request_id}/")
    assert status == 200, body
    return body if body["finished_at"] else None


def start_mock_app(front: Nginx, token: str, log: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "relay.client", "--hub", front.http, "--space", "Echo", "--token", token]
    with open(log, "ab") as out:
        return subprocess.Popen(
            [*command, *MOCK_ARGS],
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},  # SSL_CERT_FILE too
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def connected(web: WebUser) -> bool:
    status, body = web.request("GET", "/api/spaces/echo/")
    return status == 200 and body["connected"]


async def follow(front: Nginx, web: WebUser, stream: str) -> list[dict[str, Any]]:
    """A browser's view of one request through nginx, up to the final frame and the close."""
    frames = []
    async with websockets.connect(f"{front.ws}{stream}", additional_headers=web.ws_headers()) as ws:
        async for message in ws:
            frames.append(json.loads(message))
        assert ws.close_code == 1000
    return frames


def holder(hubs: list[Daphne], connection_id: str) -> Daphne:
    """The process whose log says that this app connection registered there."""
    return next(hub for hub in hubs if f"event=app.connected space=Echo conn={connection_id} " in hub.log())

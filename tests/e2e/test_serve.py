"""The hub's entry point, `python -m spacehub.serve`, against bare `daphne spacehub.asgi:application`.

The entry point takes daphne's arguments and adds two refusals (the 1009 close is tested in
test_limits.py, the body cap with a small MAX_BODY_MB in tests/faults/test_abuse_live.py). Bare daphne
must keep serving the whole hub (PROTOCOL.md section 4), without those two refusals.
"""

import asyncio
import json
import os
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import websockets
from asgiref.sync import sync_to_async

from tests import settings as test_settings
from tests.live import ROOT, SERVE, Daphne, collectstatic

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True), pytest.mark.hubs(1)]

GIB = 1024 * 1024 * 1024


def declare_body(hub: Daphne, length: int, wait: float) -> bytes:
    """POST a head declaring `length` bytes with `Expect: 100-continue`, send no body; what comes back."""
    head = (
        f"POST /spaces/echo/requests/ HTTP/1.1\r\nHost: 127.0.0.1:{hub.port}\r\nAccept: application/json\r\n"
        f"Content-Type: multipart/form-data; boundary=x\r\nContent-Length: {length}\r\nExpect: 100-continue\r\n\r\n"
    )
    answer = b""
    with socket.create_connection(("127.0.0.1", hub.port), timeout=wait) as sock:
        sock.sendall(head.encode())
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except TimeoutError:
            pass
    return answer


def test_it_answers_413_to_a_body_over_the_default_cap_without_asking_for_it(hub: Daphne) -> None:
    """MAX_BODY_MB is 1025 unless set: a 2 GiB declaration is refused at once, and the client that asked
    whether to send (`Expect: 100-continue`, as curl does for large bodies) never hears "continue"."""
    answer = declare_body(hub, 2 * GIB, wait=10)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 "), answer
    assert b"100 Continue" not in answer
    error = json.loads(body)["error"]
    assert error["code"] == "too_large"
    assert "1025 MB" in error["message"]


async def test_bare_daphne_still_serves_the_hub_without_the_two_refusals(tmp_path: Path, make_space: Any) -> None:
    if not (test_settings.HAVE_POSTGRES and test_settings.HAVE_REDIS):
        pytest.skip("needs PostgreSQL and Redis (see README)")
    await sync_to_async(collectstatic)()
    bare = Daphne(tmp_path, "bare", bare=True)
    await sync_to_async(bare.start)()  # start() waits for /healthz
    try:
        for path in ("/", "/static/spacehub/spacehub.css"):
            with urllib.request.urlopen(f"{bare.http}{path}", timeout=10) as resp:
                assert resp.status == 200, path

        _, token = await sync_to_async(make_space)("Echo")
        async with websockets.connect(f"{bare.ws}/ws/apps/", max_size=None) as app:
            await app.send(json.dumps({"type": "register", "space": "Echo", "token": token}))
            assert json.loads(await app.recv())["type"] == "registered"
            await app.send(json.dumps({"type": "partial", "id": "x", "text": "a" * (1024 * 1024 + 1)}))
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(app.recv(), 10)
        assert app.close_code == 1006, "bare daphne drops the connection without a close frame"

        answer = await sync_to_async(declare_body)(bare, 2 * GIB, 2)
        assert b" 413 " not in answer, "bare daphne has no body cap: it waits for the body"
    finally:
        bare.stop()
    assert "Traceback" not in bare.log(), bare.log()[-4000:]


def test_the_entry_point_takes_daphne_s_arguments() -> None:
    out = subprocess.run([*SERVE, "--help"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for option in ("--proxy-headers", "--ping-interval", "--websocket-max-message-size", "application"):
        assert option in out


@pytest.mark.parametrize("value", ["0", "-3", "2.5", "lots"])
def test_max_body_mb_must_be_a_whole_number_of_at_least_1(value: str) -> None:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "spacehub.settings", "DEBUG": "1", "MAX_BODY_MB": value}
    run = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert run.returncode != 0
    assert "MAX_BODY_MB" in run.stderr

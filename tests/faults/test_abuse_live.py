"""Abuse against two live daphne processes: floods, stolen and rotated tokens, guessing, hijacked
sockets, racing submissions; and oversized bodies, against a third one started with a small
MAX_BODY_MB. Each limit is checked where it matters: across processes, under concurrency, and for
the people who are not abusing anything."""

import asyncio
import itertools
import json
import select
import socket
import statistics
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
import websockets
from asgiref.sync import sync_to_async

from bench.soak import http
from relay.models import InferenceRequest
from spaces.models import Space
from tests import settings as test_settings
from tests.faults.peers import (
    Follower,
    answer,
    answer_of,
    closed,
    recv,
    register,
    register_when_free,
    serve,
    submit,
    wait_status,
)
from tests.live import Daphne, WebUser, running_hubs

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

HEARTBEAT_SECONDS = 5  # relay/consumers/app.py: a missed revoke event is noticed this often


async def round_trip(hub: Daphne, web: WebUser, prompt: str) -> float:
    started = time.monotonic()
    request_id = await submit(web, "echo", prompt)
    follower = await Follower.open(hub, web, request_id)
    await follower.until_final()
    assert follower.text == answer_of(prompt)
    return time.monotonic() - started


async def flood_once(hub: Daphne, token: str, frames: int = 6000) -> tuple[int | None, dict[str, Any] | None]:
    """Register, send pings as fast as possible; how the hub ended it, and the last error frame."""
    ws, frame = await register(hub, "Flood", token)
    if frame["type"] != "registered":
        await ws.close()
        return None, None
    last_error: dict[str, Any] | None = None

    async def drain() -> None:
        nonlocal last_error
        try:
            async for message in ws:
                got = json.loads(message)
                if got["type"] == "error":
                    last_error = got
        except websockets.ConnectionClosed:
            pass

    reader = asyncio.create_task(drain())
    try:
        for _ in range(frames):
            await ws.send('{"type": "ping"}')
    except websockets.ConnectionClosed:
        pass
    await asyncio.wait_for(reader, 30)
    return ws.close_code, last_error


async def test_a_flooding_app_is_closed_4429_while_others_keep_their_latency(
    live: list[Daphne], make_space: Any, alice: Any
) -> None:
    a, b = live
    _, echo_token = await sync_to_async(make_space)("Echo")
    _, flood_token = await sync_to_async(make_space)("Flood")
    web = await sync_to_async(WebUser)(b, alice)
    app, _ = await register(a, "Echo", echo_token)  # the flooder's neighbour on the same process
    serving = asyncio.create_task(serve(app))
    calm = [await round_trip(b, web, f"calm {n}") for n in range(5)]

    stop, ends = asyncio.Event(), []

    async def flooder() -> None:
        while not stop.is_set():  # a persistent flooder comes straight back
            code, error = await flood_once(a, flood_token)
            if code is not None:
                ends.append((code, error and error["code"]))

    flooding = asyncio.create_task(flooder())
    await asyncio.sleep(0.3)
    flooded = [await round_trip(b, web, f"flooded {n}") for n in range(5)]
    stop.set()
    await flooding
    print(f"round trips: calm {[round(t, 2) for t in calm]}, flooded {[round(t, 2) for t in flooded]}; ends {ends}")
    assert ends and all(end == (4429, "rate_limited") for end in ends), ends
    assert statistics.median(flooded) <= max(1.0, 3 * statistics.median(calm)), (calm, flooded)
    await app.close()
    await serving


async def test_a_rotated_token_disconnects_its_app_within_seconds(
    live: list[Daphne], make_space: Any, alice: Any
) -> None:
    """Rotated in the admin (the revoke event reaches the app's process) or with the event lost (only the
    database changed): either way the old token's app is closed 4401 and its request goes to the new one."""
    a, b = live
    web = await sync_to_async(WebUser)(b, alice)
    spaces = {}
    for name in ("Told", "Untold"):
        space, token = await sync_to_async(make_space)(name)
        ws, _ = await register(a, name, token)
        request_id = await submit(web, name.lower(), name)
        await recv(ws, "request")
        spaces[name] = (space, token, ws, request_id)

    told, untold = spaces["Told"][0], spaces["Untold"][0]
    rotated = time.monotonic()
    new_token = await sync_to_async(told.rotate_token)()
    untold_token = await sync_to_async(_rotate_without_event)(untold.pk)
    for name, limit, fresh in (("Told", 2.0, new_token), ("Untold", HEARTBEAT_SECONDS + 2.0, untold_token)):
        _, old_token, ws, request_id = spaces[name]
        frame = await recv(ws, "error", timeout=limit + 5)
        assert frame["code"] == "invalid_credentials"
        assert await closed(ws) == 4401
        took = time.monotonic() - rotated
        assert took <= limit, f"{name}: disconnected {took:.1f} s after the rotation"
        again, refusal = await register(b, name, old_token)
        assert (refusal["code"], await closed(again)) == ("invalid_credentials", 4401), "the old token is dead"
        ws = await register_when_free(b, name, fresh, timeout=5)
        frame = await recv(ws, "request")
        assert (frame["id"], frame["attempt"]) == (request_id, 2), "the request went to the new token's app"
        await answer(ws, frame)
        assert (await wait_status(web, request_id, {"succeeded"}))["text"] == answer_of(name)
        await ws.close()


def _rotate_without_event(space_id: int) -> str:
    """What a rotation looks like to a process whose revoke event was lost: only the database changed."""
    from spaces import tokens

    token = tokens.generate_token()
    Space.objects.filter(pk=space_id).update(token_hash=tokens.hash_token(token))
    return token


async def _a_fresh_minute(needed: float) -> None:
    """Rate limits count in calendar minutes: start where `needed` seconds fit in one."""
    left = 60 - time.time() % 60
    if left < needed:
        await asyncio.sleep(left + 0.2)


async def test_failed_registrations_are_limited_per_address_on_every_process(
    live: list[Daphne], make_space: Any
) -> None:
    a, b = live
    _, token = await sync_to_async(make_space)("Echo")
    await _a_fresh_minute(8)
    for n in range(20):  # RELAY_REGISTER_FAILURES_PER_MINUTE, counted in the shared cache
        ws, frame = await register((a, b)[n % 2], "Echo", f"sh_guess{n}")
        assert (frame["code"], await closed(ws)) == ("invalid_credentials", 4401)
    for hub in (a, b):
        ws, frame = await register(hub, "Echo", token)
        assert frame["code"] == "rate_limited", "even the right token waits out the minute"
        assert await closed(ws) == 4429


async def test_browser_sockets_refuse_foreign_null_and_missing_origins_even_with_a_session(
    live: list[Daphne], make_space: Any, alice: Any
) -> None:
    """Cross-site WebSocket hijacking: a page elsewhere opens the socket with the person's cookie."""
    a, b = live
    _, token = await sync_to_async(make_space)("Echo")
    web = await sync_to_async(WebUser)(b, alice)
    app, _ = await register(a, "Echo", token)
    request_id = await submit(web, "echo", "private")
    for path in ("/ws/spaces/echo/", f"/ws/requests/{request_id}/"):
        for origin in ("https://evil.example", "null", None):
            headers = {"Cookie": web.cookie} | ({"Origin": origin} if origin else {})
            with pytest.raises(websockets.InvalidStatus) as refused:
                await websockets.connect(f"{b.ws}{path}", additional_headers=headers)
            assert refused.value.response.status_code == 403, (path, origin)
        async with websockets.connect(f"{b.ws}{path}", additional_headers=web.ws_headers()) as same_origin:
            assert json.loads(await same_origin.recv())["type"] in ("space", "state")
    await app.close()


async def _post(hub: Daphne, web: WebUser, slug: str, prompt: str) -> tuple[int, Any]:
    body = urllib.parse.urlencode({"prompt": prompt}).encode()
    headers = web.headers(**{"Content-Type": "application/x-www-form-urlencoded"})
    return await http("POST", f"{hub.http}/spaces/{slug}/requests/", headers, body)


async def test_the_queue_limits_hold_when_submissions_race_on_two_processes(
    live: list[Daphne], make_space: Any, django_user_model: Any
) -> None:
    a, b = live
    _, mine_token = await sync_to_async(make_space)("Mine")
    _, small_token = await sync_to_async(make_space)("Small", max_queue_size=4)
    users = [await sync_to_async(django_user_model.objects.create_user)(f"racer{n}") for n in range(3)]
    webs = [await sync_to_async(WebUser)(b, user) for user in users]
    apps = []
    for name, token in (("Mine", mine_token), ("Small", small_token)):
        ws, _ = await register(a, name, token)
        await ws.send(json.dumps({"type": "stopping"}))  # it takes nothing: everything stays queued
        await ws.send(json.dumps({"type": "ping"}))
        await recv(ws, "pong")
        apps.append(ws)

    mine = await asyncio.gather(*(_post((a, b)[n % 2], webs[0], "mine", f"m{n}") for n in range(12)))
    codes = sorted(status for status, _ in mine)
    assert codes == [201] * 5 + [429] * 7, f"5 waiting requests per person (RELAY_MAX_QUEUED_PER_USER): {codes}"
    assert {body["error"]["code"] for status, body in mine if status == 429} == {"queue_full"}

    small = await asyncio.gather(*(_post((a, b)[n % 2], webs[n % 3], "small", f"s{n}") for n in range(9)))
    codes = sorted(status for status, _ in small)
    assert codes == [201] * 4 + [429] * 5, f"the space's max_queue_size of 4: {codes}"
    for ws in apps:
        await ws.close()


async def test_the_submit_rate_limit_holds_under_concurrent_submissions(
    live: list[Daphne], make_space: Any, alice: Any
) -> None:
    a, b = live
    _, token = await sync_to_async(make_space)("Echo")
    web = await sync_to_async(WebUser)(b, alice)
    app, _ = await register(a, "Echo", token)
    serving = asyncio.create_task(serve(app))
    await _a_fresh_minute(15)
    for n in range(28):  # RELAY_SUBMITS_PER_MINUTE is 30
        status, body = await _post(b, web, "echo", f"one by one {n}")
        assert status == 201, body
        await wait_status(web, body["id"], {"succeeded"})
    wave = await asyncio.gather(*(_post((a, b)[n % 2], web, "echo", f"at once {n}") for n in range(5)))
    codes = sorted(status for status, _ in wave)
    assert codes == [201, 201, 429, 429, 429], f"2 left of 30 this minute: {codes}"
    await app.close()
    await serving


CAP_MB = 2  # MAX_BODY_MB of the `capped` hub
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def capped(django_db_setup: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daphne]:
    """One hub whose operator set MAX_BODY_MB=2 in its environment."""
    if not (test_settings.HAVE_POSTGRES and test_settings.HAVE_REDIS):
        pytest.skip("needs PostgreSQL and Redis (see README)")
    with running_hubs(tmp_path_factory.mktemp("capped"), 1, MAX_BODY_MB=str(CAP_MB)) as (hub,):
        yield hub
    assert "Traceback" not in hub.log(), hub.log()[-4000:]


def _send_until_answered(hub: Daphne, head: list[str], body: Iterator[bytes]) -> tuple[int, bytes, int, bool]:
    """Send the request head, then `body` piece by piece for as long as the hub says nothing.

    Returns the status, the answer's body, how many body bytes the socket took, and whether the hub closed
    the connection after answering. A raw socket rather than asyncio's streams: a hub that closes a
    connection it did not read to the end makes the kernel reset it, and a stream then raises instead of
    handing over the answer that arrived before the reset.
    """
    answer, sent, pending, closed = b"", 0, b"", False
    with socket.create_connection(("127.0.0.1", hub.port), timeout=10) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        sock.setblocking(False)
        deadline = time.monotonic() + 20
        while not closed and time.monotonic() < deadline:
            pending = pending or next(body, b"")
            writing = [sock] if pending and not answer else []
            readable, writable, _ = select.select([sock], writing, [], 0.5)
            if readable:
                try:
                    data = sock.recv(65536)
                except ConnectionResetError:
                    data = b""
                answer += data
                closed = not data
            elif writable:
                try:
                    took = sock.send(pending)
                except (BrokenPipeError, ConnectionResetError):
                    pending, body = b"", iter(())
                    continue
                sent += took
                pending = pending[took:]
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 "), answer[:500]
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2], sent, closed


def _head(hub: Daphne, web: WebUser, *framing: str) -> list[str]:
    return [
        "POST /spaces/tiny/requests/ HTTP/1.1",
        f"Host: 127.0.0.1:{hub.port}",
        "Content-Type: multipart/form-data; boundary=x",
        *framing,
        *[f"{k}: {v}" for k, v in web.headers().items()],
    ]


def _multipart_file(size: int) -> bytes:
    return (
        b'--x\r\nContent-Disposition: form-data; name="files"; filename="big.txt"\r\n'
        b"Content-Type: text/plain\r\n\r\n" + b"x" * size + b"\r\n--x--\r\n"
    )


def test_a_body_over_the_hub_s_cap_is_refused_before_it_is_sent(capped: Daphne, make_space: Any, alice: Any) -> None:
    """A declared Content-Length over MAX_BODY_MB gets 413 too_large at once, logged in or not; then the hub
    closes the connection, having read at most what the sockets' buffers took."""
    make_space("Tiny", feature_files=True, max_upload_mb=1)
    declared = 64 * MIB
    for who in (alice, None):
        web = WebUser(capped, who)
        head = _head(capped, web, f"Content-Length: {declared}")
        status, body, sent, closed = _send_until_answered(capped, head, (b"x" * MIB for _ in range(64)))
        assert status == 413, body
        assert json.loads(body)["error"]["code"] == "too_large"
        assert closed, "the connection ends after the refusal"
        assert sent <= 8 * MIB, f"the client got {sent / MIB:.1f} MB out before the hub refused {declared // MIB} MB"
    assert not InferenceRequest.objects.exists()


def test_a_chunked_body_is_refused_as_soon_as_it_passes_the_cap(capped: Daphne, make_space: Any, alice: Any) -> None:
    make_space("Tiny", feature_files=True, max_upload_mb=1)
    web = WebUser(capped, alice)
    chunk = b"%x\r\n" % MIB + b"x" * MIB + b"\r\n"
    pieces = itertools.chain((chunk for _ in range(64)), [b"0\r\n\r\n"])
    status, body, sent, closed = _send_until_answered(capped, _head(capped, web, "Transfer-Encoding: chunked"), pieces)
    assert status == 413, body
    assert json.loads(body)["error"]["code"] == "too_large"
    assert closed
    # What passed the cap, plus what the two sockets' buffers took before the hub closed (about 3 MB here).
    assert CAP_MB * MIB < sent <= (CAP_MB + 8) * MIB, f"{sent / MIB:.1f} MB sent of 64"
    assert not InferenceRequest.objects.exists()


def test_a_body_under_the_cap_still_meets_the_space_s_own_limit(capped: Daphne, make_space: Any, alice: Any) -> None:
    """The cap is hub-wide; each space's max_upload_mb is the view's, with its own 413 too_large."""
    make_space("Tiny", feature_files=True, max_upload_mb=1)
    web = WebUser(capped, alice)
    multipart = {"Content-Type": "multipart/form-data; boundary=x"}
    status, answer = web.request("POST", "/spaces/tiny/requests/", _multipart_file(3 * MIB // 2), **multipart)
    assert status == 413, answer
    assert answer["error"]["code"] == "too_large"
    assert "1 MB" in answer["error"]["message"], "the space's limit answered, not the hub's cap"
    # Under both limits the body reaches the view whole; with no app connected that means 409.
    status, answer = web.request("POST", "/spaces/tiny/requests/", _multipart_file(MIB // 2), **multipart)
    assert (status, answer["error"]["code"]) == (409, "app_not_connected"), answer
    assert not InferenceRequest.objects.exists()

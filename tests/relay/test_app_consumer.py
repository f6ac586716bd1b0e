"""`/ws/apps/`: registration, refusals, requests and answers (PROTOCOL.md section 1)."""

import base64
from typing import Any

import pytest
from channels.db import database_sync_to_async

from relay import queue
from relay.consumers import app as app_consumer
from relay.events import publish
from relay.models import InferenceRequest, RequestFile
from tests.relay.conftest import Peer, register

pytestmark = pytest.mark.django_db(transaction=True)


async def submit(space: Any, user: Any, prompt: str = "hello") -> InferenceRequest:
    outcome = await database_sync_to_async(queue.enqueue)(space, user, {"prompt": prompt})
    await publish(outcome)
    return outcome.request


async def row(request_id: Any) -> InferenceRequest:
    return await database_sync_to_async(InferenceRequest.objects.get)(pk=request_id)


async def test_it_registers_and_describes_the_space(make_space: Any) -> None:
    space, token = await database_sync_to_async(make_space)("Echo", feature_audio=True, timeout_seconds=90)
    app, frame = await register("Echo", token)
    assert frame["type"] == "registered"
    assert frame["connection_id"]
    assert frame["space"] == {
        "name": "Echo",
        "slug": "echo",
        "timeout_seconds": 90,
        "features": {"prompt": True, "audio": True, "video": False, "files": False},
    }
    assert await database_sync_to_async(queue.is_connected)(space.pk)
    await app.close()
    assert not await database_sync_to_async(queue.is_connected)(space.pk)


@pytest.mark.parametrize("case", ["wrong_token", "unknown_space", "inactive_space", "other_space_token"])
async def test_it_refuses_bad_credentials_with_4401(make_space: Any, case: str) -> None:
    space, token = await database_sync_to_async(make_space)("Echo")
    _, other_token = await database_sync_to_async(make_space)("Other")
    name = "Echo"
    if case == "wrong_token":
        token = token[:-2] + "xx"
    elif case == "unknown_space":
        name = "Nope"
    elif case == "inactive_space":
        space.is_active = False
        await database_sync_to_async(space.save)()
    else:
        token = other_token
    app, frame = await register(name, token)
    assert frame == {"type": "error", "code": "invalid_credentials", "message": frame["message"]}
    assert await app.closed() == 4401


async def test_it_refuses_a_second_app_with_4409(make_space: Any) -> None:
    _, token = await database_sync_to_async(make_space)("Echo")
    first, frame = await register("Echo", token)
    assert frame["type"] == "registered"
    second, frame = await register("Echo", token)
    assert frame["code"] == "duplicate_connection"
    assert await second.closed() == 4409
    await first.close()
    third, frame = await register("Echo", token)
    assert frame["type"] == "registered", "the space is free again once the first app left"
    await third.close()


async def test_it_closes_4408_without_a_register_frame(make_space: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(app_consumer, "REGISTER_TIMEOUT", 0.2)
    app = await Peer("/ws/apps/").connect()
    frame = await app.recv()
    assert frame["code"] == "register_timeout"
    assert await app.closed() == 4408


@pytest.mark.parametrize(
    "payload",
    [
        "not json",
        '["a list"]',
        '{"type": "ping"}',
        '{"type": "register", "space": 5, "token": "x"}',
        '{"type": "register", "space": "Echo"}',
        '{"no": "type"}',
    ],
)
async def test_it_closes_4400_when_the_first_frame_is_not_register(make_space: Any, payload: str) -> None:
    app = await Peer("/ws/apps/").connect()
    await app.comm.send_to(text_data=payload)
    frame = await app.recv()
    assert frame["type"] == "error" and frame["code"] == "bad_message"
    assert await app.closed() == 4400


async def test_it_refuses_a_binary_first_frame_with_4400(db: Any) -> None:
    app = await Peer("/ws/apps/").connect()
    await app.comm.send_to(bytes_data=b"\x00\x01")
    assert (await app.recv())["code"] == "bad_message"
    assert await app.closed() == 4400


async def test_it_answers_ping_and_keeps_the_connection_after_bad_frames(make_space: Any) -> None:
    _, token = await database_sync_to_async(make_space)("Echo")
    app, _ = await register("Echo", token)
    await app.send({"type": "ping"})
    assert await app.recv() == {"type": "pong"}
    await app.comm.send_to(text_data="{broken")
    assert (await app.recv())["code"] == "bad_message"
    await app.send({"type": "teleport"})
    assert (await app.recv())["code"] == "bad_message"
    await app.send({"type": "result", "id": "00000000-0000-0000-0000-000000000000"})
    assert (await app.recv())["code"] == "unknown_request"
    await app.send({"type": "ping"})
    assert await app.recv() == {"type": "pong"}, "still open after the errors"
    await app.close()


async def test_it_sends_a_request_and_records_the_streamed_answer(make_space: Any, alice: Any) -> None:
    space, token = await database_sync_to_async(make_space)("Echo")
    app, _ = await register("Echo", token)
    req = await submit(space, alice, "a poem")
    frame = await app.recv()
    assert frame["type"] == "request"
    assert frame["id"] == str(req.id)
    assert frame["attempt"] == 1
    assert frame["inputs"] == {"prompt": "a poem"}
    assert frame["deadline"].endswith("Z")
    await app.send({"type": "progress", "id": frame["id"], "progress": 0.4, "message": "step 4/10"})
    await app.send({"type": "partial", "id": frame["id"], "text": "Roses "})
    await app.send({"type": "partial", "id": frame["id"], "text": "are red"})
    png = b"\x89PNG fake"
    await app.send(
        {
            "type": "result",
            "id": frame["id"],
            "outputs": {
                "text": "Roses are red.",
                "files": [{"name": "out.png", "content_type": "image/png", "data": base64.b64encode(png).decode()}],
            },
        }
    )
    await app.send({"type": "ping"})
    assert await app.recv() == {"type": "pong"}
    done = await row(req.id)
    assert done.status == "succeeded"
    assert done.text == "Roses are red."
    assert done.outputs["text"] == "Roses are red."
    stored = await database_sync_to_async(lambda: list(RequestFile.objects.filter(request=done, role="output")))()
    assert [(f.name, f.content_type, f.size) for f in stored] == [("out.png", "image/png", len(png))]
    assert await database_sync_to_async(lambda: stored[0].file.read())() == png
    await app.close()


async def test_it_rejects_bad_progress_and_result_fields_but_keeps_the_request(make_space: Any, alice: Any) -> None:
    space, token = await database_sync_to_async(make_space)("Echo")
    app, _ = await register("Echo", token)
    req = await submit(space, alice)
    frame = await app.recv()
    for bad in [
        {"type": "progress", "id": frame["id"], "progress": 1.5},
        {"type": "progress", "id": frame["id"], "progress": "half"},
        {"type": "partial", "id": frame["id"], "text": 42},
        {"type": "result", "id": frame["id"], "outputs": {"files": [{"name": "x", "data": "@@not base64@@"}]}},
        {"type": "result", "id": frame["id"], "outputs": "text"},
    ]:
        await app.send(bad)
        assert (await app.recv())["code"] == "bad_message", bad
    assert (await row(req.id)).status == "running"
    await app.send({"type": "progress", "id": frame["id"], "progress": None})
    await app.send({"type": "result", "id": frame["id"], "outputs": {"text": "ok"}})
    await app.send({"type": "ping"})
    await app.recv_type("pong")
    assert (await row(req.id)).status == "succeeded"
    await app.close()


async def test_it_records_an_app_error_and_sends_the_next_request(make_space: Any, alice: Any) -> None:
    space, token = await database_sync_to_async(make_space)("Echo")
    app, _ = await register("Echo", token)
    first = await submit(space, alice, "one")
    second = await submit(space, alice, "two")
    frame = await app.recv()
    assert frame["id"] == str(first.id)
    assert await app.nothing(), "one request at a time"
    await app.send({"type": "error", "id": frame["id"], "message": "model failed: out of memory"})
    nxt = await app.recv()
    assert nxt["id"] == str(second.id)
    failed = await row(first.id)
    assert (failed.status, failed.error_code, failed.error_message) == (
        "failed",
        "app_error",
        "model failed: out of memory",
    )
    await app.send({"type": "result", "id": frame["id"], "outputs": {"text": "late"}})
    assert (await app.recv())["code"] == "unknown_request", "a finished id is no longer in flight"
    await app.close()


async def test_it_times_out_a_slow_request_and_moves_on(make_space: Any, alice: Any) -> None:
    space, token = await database_sync_to_async(make_space)("Echo", timeout_seconds=1)
    app, _ = await register("Echo", token)
    slow = await submit(space, alice, "slow")
    nxt = await submit(space, alice, "next")
    frame = await app.recv()
    assert frame["id"] == str(slow.id)
    cancel = await app.recv(timeout=5)
    assert cancel == {"type": "cancel", "id": str(slow.id), "reason": "timeout"}
    assert (await app.recv())["id"] == str(nxt.id)
    timed_out = await row(slow.id)
    assert (timed_out.status, timed_out.error_code) == ("timed_out", "timed_out")
    await app.send({"type": "result", "id": str(slow.id), "outputs": {"text": "too late"}})
    await app.send({"type": "ping"})
    assert await app.recv() == {"type": "pong"}, "the late result is ignored, without an error"
    assert (await row(slow.id)).status == "timed_out"
    await app.close()


async def test_it_tells_the_app_when_its_request_is_cancelled(make_space: Any, alice: Any) -> None:
    space, token = await database_sync_to_async(make_space)("Echo")
    app, _ = await register("Echo", token)
    req = await submit(space, alice)
    await app.recv()
    outcome = await database_sync_to_async(queue.cancel)(req.id)
    await publish(outcome)
    assert await app.recv() == {"type": "cancel", "id": str(req.id), "reason": "cancelled"}
    await app.send({"type": "partial", "id": str(req.id), "text": "already on its way"})
    await app.send({"type": "result", "id": str(req.id), "outputs": {"text": "late"}})
    await app.send({"type": "ping"})
    assert await app.recv() == {"type": "pong"}, "frames about a cancelled id are ignored"
    assert (await row(req.id)).status == "cancelled"
    await app.close()


async def test_it_requeues_on_disconnect_and_resends_with_the_next_attempt(make_space: Any, alice: Any) -> None:
    space, token = await database_sync_to_async(make_space)("Echo")
    for attempt in (1, 2, 3):
        app, _ = await register("Echo", token)
        if attempt == 1:
            req = await submit(space, alice)
        frame = await app.recv()
        assert (frame["id"], frame["attempt"]) == (str(req.id), attempt)
        await app.send({"type": "partial", "id": frame["id"], "text": "half an answer"})
        await app.close()
        state = await row(req.id)
        if attempt < 3:
            assert (state.status, state.attempt, state.connection_id) == ("queued", attempt, "")
    assert (state.status, state.error_code) == ("failed", "app_disconnected")


async def test_it_disconnects_the_app_when_its_token_is_rotated(make_space: Any) -> None:
    space, token = await database_sync_to_async(make_space)("Echo")
    app, _ = await register("Echo", token)
    await database_sync_to_async(space.rotate_token)()
    frame = await app.recv()
    assert frame["code"] == "invalid_credentials"
    assert await app.closed() == 4401


async def test_it_closes_a_flooding_app(make_space: Any, settings: Any) -> None:
    settings.RELAY_APP_FRAME_BURST = 20
    settings.RELAY_APP_FRAMES_PER_SECOND = 5
    _, token = await database_sync_to_async(make_space)("Echo")
    app, _ = await register("Echo", token)
    for _ in range(40):
        await app.comm.send_to(text_data='{"type": "ping"}')
    frames = []
    while True:
        out = await app.comm.receive_output(5)
        if out["type"] == "websocket.close":
            break
        frames.append(out["text"])
    assert out["code"] == 4429
    assert '"rate_limited"' in frames[-1]
    assert 15 <= len(frames) <= 25, "the burst was served before the limit hit"


async def test_it_disconnects_the_app_of_a_deactivated_space(make_space: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(app_consumer, "HEARTBEAT_SECONDS", 0.2)
    space, token = await database_sync_to_async(make_space)("Echo")
    app, _ = await register("Echo", token)
    space.is_active = False
    await database_sync_to_async(space.save)()
    assert (await app.recv())["code"] == "invalid_credentials"
    assert await app.closed() == 4401


async def test_it_rate_limits_failed_registrations_per_address(make_space: Any, settings: Any) -> None:
    settings.RELAY_REGISTER_FAILURES_PER_MINUTE = 3
    _, token = await database_sync_to_async(make_space)("Echo")
    for _ in range(3):
        app, frame = await register("Echo", "sh_wrong")
        assert frame["code"] == "invalid_credentials"
        await app.closed()
    app, frame = await register("Echo", token)
    assert frame["code"] == "rate_limited", "even the right token waits out the window"
    assert await app.closed() == 4429


async def test_a_stopping_app_gets_no_new_request(make_space: Any, alice: Any) -> None:
    space, token = await database_sync_to_async(make_space)("Echo")
    app, _ = await register("Echo", token)
    first = await submit(space, alice, "first")
    second = await submit(space, alice, "second")
    frame = await app.recv()
    await app.send({"type": "stopping"})
    await app.send({"type": "result", "id": frame["id"], "outputs": {"text": "last one"}})
    assert await app.nothing(0.5), "nothing new for an app on its way out"
    await app.close()
    assert (await row(first.id)).status == "succeeded"
    waiting = await row(second.id)
    assert (waiting.status, waiting.attempt) == ("queued", 0), "no attempt used up"


@pytest.mark.parametrize("text", ['"a\\u0000b"', '"\\ud800 lone"'])
async def test_it_refuses_strings_the_database_cannot_store(make_space: Any, alice: Any, text: str) -> None:
    space, token = await database_sync_to_async(make_space)("Echo")
    app, _ = await register("Echo", token)
    req = await submit(space, alice)
    frame = await app.recv()
    await app.comm.send_to(text_data=f'{{"type": "partial", "id": "{frame["id"]}", "text": {text}}}')
    assert (await app.recv())["code"] == "bad_message"
    await app.send({"type": "result", "id": frame["id"], "outputs": {"text": "fine"}})
    await app.send({"type": "ping"})
    await app.recv_type("pong")
    assert (await row(req.id)).status == "succeeded", "the connection lived on"
    await app.close()


async def test_it_refuses_a_result_file_type_that_is_not_a_media_type(make_space: Any, alice: Any) -> None:
    space, token = await database_sync_to_async(make_space)("Echo")
    app, _ = await register("Echo", token)
    await submit(space, alice)
    frame = await app.recv()
    bad = {"name": "x.txt", "content_type": "text/plain\r\nSet-Cookie: a=b", "data": ""}
    await app.send({"type": "result", "id": frame["id"], "outputs": {"files": [bad]}})
    assert (await app.recv())["code"] == "bad_message"
    await app.close()

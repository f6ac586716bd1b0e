"""Fuzz /ws/apps/ in-process (channels' WebsocketCommunicator against spacehub.asgi.application).

Every frame gets the contract's answer (tests/faults/fuzz.py judges it from PROTOCOL.md), the
connection stays open after registration, no frame reaches another request, and what an accepted
frame did is exactly what the database holds.
"""

import json
import uuid
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from hypothesis import example, given
from hypothesis import strategies as st

from relay import queue
from relay.events import publish
from relay.models import InferenceRequest, RequestFile
from spacehub.asgi import application
from tests.faults import fuzz

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fresh_channel_layer")]

CLOSE_CODES = {"bad_message": 4400, "invalid_credentials": 4401, "rate_limited": 4429}


async def send(comm: WebsocketCommunicator, text: str | None, data: bytes | None) -> None:
    """One frame as daphne hands it over (the communicator's send_to refuses empty frames)."""
    await comm.send_input({"type": "websocket.receive", **({"text": text} if text is not None else {"bytes": data})})


async def outputs_until_pong(comm: WebsocketCommunicator, pongs: int = 1) -> list[dict[str, Any]]:
    """Send a ping, then read every frame until `pongs` pongs came back (the frame's own, then ours)."""
    await comm.send_to(text_data='{"type": "ping"}')
    frames = []
    while pongs:
        out = await comm.receive_output(5)
        assert out["type"] == "websocket.send", f"the connection ended: {out}"
        frame = json.loads(out["text"])
        if frame["type"] == "pong":
            pongs -= 1
        else:
            frames.append(frame)
    return frames


@pytest.fixture
def echo(make_space: Any, settings: Any) -> tuple[Any, str]:
    settings.RELAY_REGISTER_FAILURES_PER_MINUTE = 100_000  # the fuzz fails registrations on purpose
    return make_space("Echo")


@pytest.fixture
async def bystander(make_space: Any, alice: Any) -> Any:
    """Another space's app, with a request of its own in flight that no fuzzed frame may touch."""
    space, token = await database_sync_to_async(make_space)("Other")
    comm = WebsocketCommunicator(application, "/ws/apps/")
    await comm.connect()
    await comm.send_to(text_data=json.dumps({"type": "register", "space": "Other", "token": token}))
    assert json.loads((await comm.receive_output(5))["text"])["type"] == "registered"
    outcome = await database_sync_to_async(queue.enqueue)(space, alice, {"prompt": "bystander"})
    await publish(outcome)
    frame = json.loads((await comm.receive_output(5))["text"])
    yield frame["id"]
    row = await database_sync_to_async(InferenceRequest.objects.get)(pk=frame["id"])
    assert (row.status, row.text, row.seq) == ("running", "", 1), "a fuzzed frame reached another space's request"
    await comm.disconnect()


@fuzz.FUZZ
@given(first=st.one_of(fuzz.frames, fuzz.app_frames.map(lambda f: ("json", {**f, "type": "register"}))))
@example(first=("json", {"type": "register", "space": "Echo", "token": "@token", "client": {"k": fuzz.nested(50)}}))
@example(
    first=(
        "text",
        '{"type": "register", "space": "Echo", "token": "@token", "client": {"k": ' + fuzz.nested(900) + "}}",
    )
)
@example(first=("json", {"type": "register", "space": "Echo", "token": "@token", "client": "not an object"}))
@example(first=("json", {"type": "register", "space": "Echo", "token": "@token" + "x" * 300}))
async def test_the_first_frame_registers_or_is_refused_with_its_close_code(echo: Any, first: Any) -> None:
    _, token = echo
    text, data = fuzz.encode(*first, {"@token": token})
    comm = WebsocketCommunicator(application, "/ws/apps/")
    assert (await comm.connect())[0]
    await send(comm, text, data)
    reply = json.loads((await comm.receive_output(5))["text"])
    allowed = fuzz.judge_register(text, "Echo", token)
    if text is not None and "[[[[" in text:
        allowed |= {"bad_message"}  # deep nesting: the hub may refuse it as bad JSON
    if reply["type"] == "registered":
        assert "registered" in allowed, (first, reply)
        await comm.disconnect()
        return
    assert reply["type"] == "error" and isinstance(reply["message"], str), reply
    assert reply["code"] in allowed, (first, reply)
    out = await comm.receive_output(5)
    assert out == {"type": "websocket.close", "code": CLOSE_CODES[reply["code"]]}, out


@fuzz.FUZZ
@given(sent=st.lists(fuzz.frames, min_size=1, max_size=8))
async def test_every_frame_after_registration_gets_the_contract_s_answer(
    echo: Any, alice: Any, bystander: str, sent: list[Any]
) -> None:
    space, token = echo
    comm = WebsocketCommunicator(application, "/ws/apps/")
    await comm.connect()
    await comm.send_to(text_data=json.dumps({"type": "register", "space": "Echo", "token": token}))
    assert json.loads((await comm.receive_output(5))["text"])["type"] == "registered"
    outcome = await database_sync_to_async(queue.enqueue)(space, alice, {"prompt": "fuzz"})
    await publish(outcome)
    request = json.loads((await comm.receive_output(5))["text"])
    inflight = request["id"]
    ids = {fuzz.INFLIGHT: inflight, fuzz.BYSTANDER: bystander, fuzz.UNKNOWN: str(uuid.uuid4())}

    ended, text, result = "", "", None
    for kind, value in sent:
        frame_text, data = fuzz.encode(kind, value, ids)
        verdict = fuzz.judge(frame_text, inflight, bool(ended))
        await send(comm, frame_text, data)
        replies = await outputs_until_pong(comm, 1 + verdict.pongs)
        codes = [r["code"] for r in replies if r["type"] == "error"]
        assert all(r["type"] == "error" and isinstance(r["message"], str) for r in replies), replies
        assert len(codes) <= 1, replies
        answer = codes[0] if codes else "ok"
        assert answer in verdict.allowed, f"{frame_text!r:.300}: answered {answer}, allowed {verdict.allowed}"
        if answer == "ok" and verdict.ends:
            ended, result = verdict.ends, verdict
        elif answer == "ok" and verdict.text is not None and not ended:
            text += verdict.text

    row = await _settled(inflight)
    if ended == "succeeded":
        assert result is not None
        expected = result.text if result.text is not None else text
        files = await database_sync_to_async(RequestFile.objects.filter(request_id=inflight, role="output").count)()
        assert (row.status, row.text, files) == ("succeeded", expected, result.files), "the app's own result"
    elif ended == "failed":
        assert result is not None
        assert (row.status, row.error_code) == ("failed", "app_error")
        assert row.error_message == (result.error_message or "The app reported an error.")[:2000]
    else:
        assert (row.status, row.text) == ("running", text), "every accepted partial, once, in order"
        await database_sync_to_async(queue.cancel)(inflight)
    await comm.disconnect()


async def _settled(request_id: str) -> InferenceRequest:
    """The row once the hub's coalesced stream writes (every 30 ms) have landed."""
    import asyncio

    last = None
    for _ in range(50):
        row = await database_sync_to_async(InferenceRequest.objects.get)(pk=request_id)
        if last is not None and row.seq == last.seq:
            return row
        last = row
        await asyncio.sleep(0.05)
    return last  # type: ignore[return-value]

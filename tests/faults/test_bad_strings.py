"""Strings an app may send that PostgreSQL cannot store: NUL characters and unpaired surrogates.

JSON carries both ("\\u0000", "\\ud800"), so any app can send them, and a model's output may hold
one by accident. The contract's answer is bad_message with the connection kept open. (They used to
crash the consumer, whose heartbeat then held the space until the process restarted.) And the
check must not refuse what is fine: a literal backslash-u-0000 in text, a media type with parameters.
"""

import json
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from relay import queue
from relay.events import publish
from relay.models import InferenceRequest
from spacehub.asgi import application

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fresh_channel_layer")]

NUL, SURROGATE = "nul \x00 inside", "lone \ud800 surrogate"
# Every string field of every frame is affected; one of each kind is enough to keep the bug in view.
STREAM_CASES = [
    pytest.param({"text": NUL}, id="partial-nul"),
    pytest.param({"type": "result", "outputs": {"text": SURROGATE}}, id="result-surrogate"),
    pytest.param({"type": "error", "message": NUL}, id="error-nul"),
    pytest.param({"type": "progress", "progress": 0.5, "message": SURROGATE}, id="progress-surrogate"),
    pytest.param(
        {"type": "result", "outputs": {"files": [{"name": NUL, "data": ""}]}}, id="file-name-nul"
    ),  # names are cleaned (relay/files.py clean_name): fine
]
REGISTER_CASES = [
    pytest.param("client", NUL, id="client-nul"),
    pytest.param("token", SURROGATE, id="token-surrogate"),
    pytest.param("token", NUL, id="token-nul"),  # only hashed, never stored: fine
]


async def reply(comm: WebsocketCommunicator) -> dict[str, Any]:
    try:
        return await comm.receive_output(1)
    except Exception as exc:  # the consumer raised: daphne would log it and close with 1011
        pytest.fail(f"the consumer crashed: {exc!r}")


@pytest.mark.parametrize("fields", STREAM_CASES)
async def test_a_string_the_database_cannot_store_is_refused_not_fatal(
    make_space: Any, alice: Any, fields: dict[str, Any]
) -> None:
    space, token = await database_sync_to_async(make_space)("Echo")
    comm = WebsocketCommunicator(application, "/ws/apps/")
    await comm.connect()
    await comm.send_to(text_data=json.dumps({"type": "register", "space": "Echo", "token": token}))
    await comm.receive_output(5)
    await publish(await database_sync_to_async(queue.enqueue)(space, alice, {"prompt": "x"}))
    request = json.loads((await comm.receive_output(5))["text"])
    await comm.send_to(text_data=json.dumps({"type": "partial", "id": request["id"], **fields}))
    await comm.send_to(text_data='{"type": "ping"}')
    answer = json.loads((await reply(comm))["text"])
    if answer["type"] == "error":
        assert answer["code"] == "bad_message"
        answer = json.loads((await reply(comm))["text"])
    assert answer == {"type": "pong"}, "the connection stays open"
    await comm.disconnect()


@pytest.mark.parametrize("field,bad", REGISTER_CASES)
async def test_a_register_frame_with_such_a_string_is_refused_with_a_close_code(
    make_space: Any, field: str, bad: str
) -> None:
    _, token = await database_sync_to_async(make_space)("Echo")
    frame: dict[str, Any] = {"type": "register", "space": "Echo", "token": token}
    frame[field] = {"name": bad} if field == "client" else bad
    comm = WebsocketCommunicator(application, "/ws/apps/")
    await comm.connect()
    await comm.send_to(text_data=json.dumps(frame))
    answer = json.loads((await reply(comm))["text"])
    if answer["type"] == "registered":
        assert field == "client", "a wrong token never registers"
        await comm.disconnect()
        return
    assert answer["type"] == "error" and answer["code"] in ("bad_message", "invalid_credentials"), answer
    assert (await reply(comm))["type"] == "websocket.close"


async def _answer_to_result(make_space: Any, alice: Any, outputs: dict[str, Any]) -> tuple[dict[str, Any], str]:
    space, token = await database_sync_to_async(make_space)("Echo")
    comm = WebsocketCommunicator(application, "/ws/apps/")
    await comm.connect()
    await comm.send_to(text_data=json.dumps({"type": "register", "space": "Echo", "token": token}))
    await comm.receive_output(5)
    await publish(await database_sync_to_async(queue.enqueue)(space, alice, {"prompt": "x"}))
    request = json.loads((await comm.receive_output(5))["text"])
    await comm.send_to(text_data=json.dumps({"type": "result", "id": request["id"], "outputs": outputs}))
    await comm.send_to(text_data='{"type": "ping"}')
    answer = json.loads((await reply(comm))["text"])
    status = await database_sync_to_async(
        lambda: InferenceRequest.objects.values_list("status", flat=True).get(pk=request["id"])
    )()
    await comm.disconnect()
    return answer, status


async def test_a_backslash_u0000_in_text_is_text_not_a_nul(make_space: Any, alice: Any) -> None:
    answer, status = await _answer_to_result(make_space, alice, {"text": 'print("\\u0000 is a NUL")'})
    assert (answer, status) == ({"type": "pong"}, "succeeded")


async def test_a_media_type_with_parameters_is_a_media_type(make_space: Any, alice: Any) -> None:
    files = [{"name": "a.txt", "content_type": "text/plain; charset=utf-8", "data": ""}]
    answer, status = await _answer_to_result(make_space, alice, {"files": files})
    assert (answer, status) == ({"type": "pong"}, "succeeded")


@pytest.mark.parametrize("content_type", ["text/plain\r\nX-Injected: 1", "text/html\nSet-Cookie: a=b"])
async def test_a_content_type_with_a_line_break_is_refused(make_space: Any, alice: Any, content_type: str) -> None:
    files = [{"name": "a.txt", "content_type": content_type, "data": ""}]
    answer, status = await _answer_to_result(make_space, alice, {"files": files})
    assert (answer["type"], answer.get("code"), status) == ("error", "bad_message", "running")

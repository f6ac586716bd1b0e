"""Input files by signed URL (for the app, while the request is in flight); result files (owner and staff)."""

from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from relay import files, queue
from relay.frames import ResultFile
from relay.models import RequestFile
from tests.relay.helpers import connect_app


@pytest.fixture
def space(make_space: Any) -> Any:
    space, _ = make_space("Ears", feature_audio=True)
    connect_app(space)
    return space


def submit_audio(client: Client, user: Any) -> str:
    client.force_login(user)
    audio = SimpleUploadedFile("voice.wav", b"RIFF-audio-bytes", content_type="audio/wav")
    response = client.post("/spaces/ears/requests/", {"audio": audio}, HTTP_ACCEPT="application/json")
    assert response.status_code == 201, response.content
    return response.json()["id"]


def test_the_app_gets_a_signed_url_that_dies_with_the_request(space: Any, alice: Any) -> None:
    request_id = submit_audio(Client(), alice)
    req = queue.claim_next(space, "conn-1").request
    inputs = files.request_inputs(req, "http://hub.example")
    audio = inputs["audio"]
    assert {k: audio[k] for k in ("name", "content_type", "size")} == {
        "name": "voice.wav",
        "content_type": "audio/wav",
        "size": 16,
    }
    assert audio["url"].startswith("http://hub.example/relay/files/")
    path = audio["url"].removeprefix("http://hub.example")
    anonymous = Client()
    response = anonymous.get(path)
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"RIFF-audio-bytes"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert anonymous.get(path[:-5] + "xxxx/").status_code == 404, "a tampered signature"
    queue.finish(request_id, "conn-1", {"text": "heard it"})
    assert anonymous.get(path).status_code == 404, "the link stops working when the request ends"


def test_result_files_are_for_the_submitter_and_staff_only(space: Any, alice: Any, bob: Any, staff: Any) -> None:
    client = Client()
    request_id = submit_audio(client, alice)
    queue.claim_next(space, "conn-1")
    records = files.save_outputs(request_id, [ResultFile("<img src=x onerror=alert(1)>.png", "image/png", b"PNGDATA")])
    queue.finish(request_id, "conn-1", {"files": files.output_entries(records)})
    RequestFile.objects.bulk_create(records)
    state = client.get(f"/api/requests/{request_id}/").json()
    entry = state["outputs"]["files"][0]
    assert {k: entry[k] for k in ("name", "content_type", "size")} == {
        "name": "<img src=x onerror=alert(1)>.png",
        "content_type": "image/png",
        "size": 7,
    }
    response = client.get(entry["url"])
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"PNGDATA"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Disposition"].startswith("attachment;")
    other = Client()
    other.force_login(bob)
    assert other.get(entry["url"]).status_code == 404
    assert Client().get(entry["url"]).status_code == 302, "anonymous: to the login page"
    boss = Client()
    boss.force_login(staff)
    assert boss.get(entry["url"]).status_code == 200

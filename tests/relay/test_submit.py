"""POST /spaces/<slug>/requests/: who may submit, what is accepted, every refusal."""

from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from relay.models import InferenceRequest, RequestFile
from tests.relay.helpers import connect_app, submit

JSON = {"HTTP_ACCEPT": "application/json"}


@pytest.fixture
def echo(make_space: Any) -> Any:
    space, _ = make_space("Echo")
    connect_app(space)
    return space


def post(client: Client, slug: str = "echo", **data: Any) -> Any:
    return client.post(f"/spaces/{slug}/requests/", data, **JSON)


def test_it_queues_a_prompt_and_answers_201(client: Client, alice: Any, echo: Any) -> None:
    client.force_login(alice)
    response = post(client, prompt="a poem about Python")
    assert response.status_code == 201
    body = response.json()
    req = InferenceRequest.objects.get(pk=body["id"])
    assert body == {
        "id": str(req.id),
        "status": "queued",
        "position": 1,
        "stream": f"/ws/requests/{req.id}/",
        "status_url": f"/api/requests/{req.id}/",
    }
    assert (req.user, req.space, req.inputs) == (alice, echo, {"prompt": "a poem about Python"})


def test_it_redirects_303_to_the_space_page_without_json(client: Client, alice: Any, echo: Any) -> None:
    client.force_login(alice)
    response = client.post("/spaces/echo/requests/", {"prompt": "hi"})
    req = InferenceRequest.objects.get()
    assert response.status_code == 303
    assert response["Location"] == f"/spaces/echo/?request={req.id}"
    page = client.get(response["Location"])
    assert str(req.id) in page.content.decode()


def test_it_refuses_anonymous_users(client: Client, echo: Any) -> None:
    response = post(client, prompt="hi")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"
    html = client.post("/spaces/echo/requests/", {"prompt": "hi"})
    assert html.status_code == 302 and html["Location"].startswith("/accounts/login/")
    assert not InferenceRequest.objects.exists()


def test_it_requires_csrf(alice: Any, echo: Any) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    response = client.post("/spaces/echo/requests/", {"prompt": "hi"}, **JSON)
    assert response.status_code == 403
    assert not InferenceRequest.objects.exists()


def test_it_refuses_get(client: Client, alice: Any, echo: Any) -> None:
    client.force_login(alice)
    assert client.get("/spaces/echo/requests/").status_code == 405


def test_it_404s_for_an_unknown_or_inactive_space(client: Client, alice: Any, make_space: Any) -> None:
    client.force_login(alice)
    make_space("Off", is_active=False)
    assert post(client, "off", prompt="hi").status_code == 404
    assert post(client, "nope", prompt="hi").status_code == 404


def test_it_answers_400_invalid_with_per_field_messages(client: Client, alice: Any, echo: Any) -> None:
    client.force_login(alice)
    response = post(client, prompt="")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert error["fields"]["__all__"]
    too_long = post(client, prompt="x" * 20_001)
    assert too_long.status_code == 400
    assert "prompt" in too_long.json()["error"]["fields"]


def test_it_refuses_an_input_of_a_disabled_feature(client: Client, alice: Any, echo: Any) -> None:
    client.force_login(alice)
    audio = SimpleUploadedFile("a.wav", b"RIFF....", content_type="audio/wav")
    response = post(client, prompt="hi", audio=audio)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"
    assert not InferenceRequest.objects.exists()


def test_it_answers_409_when_no_app_is_connected(client: Client, alice: Any, make_space: Any) -> None:
    make_space("Lonely")
    client.force_login(alice)
    response = post(client, "lonely", prompt="hi")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "app_not_connected"


def test_it_answers_429_when_the_queue_is_full(client: Client, alice: Any, bob: Any, make_space: Any) -> None:
    space, _ = make_space("Small", max_queue_size=2)
    connect_app(space)
    submit(space, bob)
    submit(space, bob)
    client.force_login(alice)
    response = post(client, "small", prompt="hi")
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "queue_full"


def test_it_caps_queued_requests_per_user(client: Client, alice: Any, echo: Any, settings: Any) -> None:
    settings.RELAY_MAX_QUEUED_PER_USER = 2
    client.force_login(alice)
    assert post(client, prompt="1").status_code == 201
    assert post(client, prompt="2").status_code == 201
    response = post(client, prompt="3")
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "queue_full"


def test_it_stores_uploads_and_answers_413_over_the_limit(client: Client, alice: Any, make_space: Any) -> None:
    space, _ = make_space("Ears", feature_prompt=False, feature_audio=True, feature_files=True, max_upload_mb=1)
    connect_app(space)
    client.force_login(alice)
    ok = post(
        client,
        "ears",
        audio=SimpleUploadedFile("../../etc/passwd.wav", b"RIFF" + b"\0" * 100, content_type="audio/wav"),
        files=[SimpleUploadedFile("notes.txt", b"hello", content_type="text/plain")],
    )
    assert ok.status_code == 201, ok.content
    stored = {f.field: f for f in RequestFile.objects.all()}
    assert stored["audio"].name == "passwd.wav", "a name is never a path"
    assert "passwd" not in stored["audio"].file.name and ".." not in stored["audio"].file.name
    assert stored["files"].file.read() == b"hello"
    big = SimpleUploadedFile("big.wav", b"\0" * (1024 * 1024 + 10), content_type="audio/wav")
    response = post(client, "ears", audio=big)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"
    assert InferenceRequest.objects.count() == 1


def test_it_checks_upload_types(client: Client, alice: Any, make_space: Any) -> None:
    space, _ = make_space("Ears", feature_audio=True, feature_video=True, feature_files=True)
    connect_app(space)
    client.force_login(alice)
    wrong_audio = post(client, "ears", audio=SimpleUploadedFile("a.wav", b"x", content_type="video/mp4"))
    assert wrong_audio.status_code == 400 and "audio" in wrong_audio.json()["error"]["fields"]
    wrong_video = post(client, "ears", video=SimpleUploadedFile("v.mp4", b"x", content_type="audio/wav"))
    assert wrong_video.status_code == 400 and "video" in wrong_video.json()["error"]["fields"]
    exe = post(client, "ears", files=[SimpleUploadedFile("run.exe", b"MZ", content_type="application/x-msdownload")])
    assert exe.status_code == 400 and "files" in exe.json()["error"]["fields"]
    many = [SimpleUploadedFile(f"{i}.txt", b"x", content_type="text/plain") for i in range(11)]
    assert post(client, "ears", files=many).status_code == 400


def test_it_rate_limits_submissions_per_user(client: Client, alice: Any, echo: Any, settings: Any) -> None:
    settings.RELAY_SUBMITS_PER_MINUTE = 2
    settings.RELAY_MAX_QUEUED_PER_USER = 10
    client.force_login(alice)
    assert post(client, prompt="1").status_code == 201
    assert post(client, prompt="2").status_code == 201
    response = post(client, prompt="3")
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "rate_limited"
    assert InferenceRequest.objects.count() == 2

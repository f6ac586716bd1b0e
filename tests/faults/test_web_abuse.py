"""The web side under attack (in-process, Django's test client): CSRF on every POST the URL conf has,
hostile prompts, file names and app output on every page that shows them, headers an app controls."""

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from relay import files, queue
from relay.frames import ResultFile
from relay.models import InferenceRequest, RequestFile
from spaces.models import Space
from tests.relay.helpers import connect_app

pytestmark = pytest.mark.django_db

JSON = {"HTTP_ACCEPT": "application/json"}
PAYLOADS = {
    "prompt": '"><script>alert("prompt")</script>',
    "file": "<img src=x onerror=alert('file')>.txt",
    "output": "<script>alert('output')</script>",
    "result file": "<svg onload=alert('result')>.png",
    "error": "<img src=x onerror=alert('error')>",
}
MARKERS = ["<script>alert(", "<img src=x onerror", "<svg onload"]


def sample_paths(patterns: list[Any], prefix: str = "") -> list[str]:
    """One concrete path per URL pattern of the project (converters filled with plausible values)."""
    values = {"slug": "echo", "uuid": "00000000-0000-0000-0000-000000000001", "str": "x", "path": "1", "int": "1"}
    out = []
    for entry in patterns:
        route = str(entry.pattern)
        if route.startswith("^") or "(?P" in route:
            continue  # a regular expression (the admin's app index): GET only
        for kind, value in values.items():
            while f"<{kind}:" in route:
                start = route.index(f"<{kind}:")
                route = route[:start] + value + route[route.index(">", start) + 1 :]
        while "<" in route:  # no converter: a str
            start = route.index("<")
            route = route[:start] + "x" + route[route.index(">", start) + 1 :]
        if isinstance(entry, URLResolver):
            out += sample_paths(entry.url_patterns, prefix + route)
        elif isinstance(entry, URLPattern):
            out.append("/" + prefix + route)
    return out


def test_every_post_of_the_url_conf_needs_the_csrf_token(make_space: Any) -> None:
    """Logged in as a superuser (every view lets them act), but without the token: no POST does anything."""
    space, _ = make_space("Echo")
    connect_app(space)
    boss = get_user_model().objects.create_superuser("boss", "boss@example.com", "boss-password")
    client = Client(enforce_csrf_checks=True)
    client.force_login(boss)
    before = (
        Space.objects.get(pk=space.pk).token_hash,
        InferenceRequest.objects.count(),
        get_user_model().objects.count(),
    )
    paths = sample_paths(get_resolver().url_patterns)
    assert "/spaces/echo/requests/" in paths and "/api/requests/00000000-0000-0000-0000-000000000001/cancel/" in paths
    answers = {path: client.post(path, {"prompt": "x", "name": "x"}).status_code for path in paths}
    accepted = {path: status for path, status in answers.items() if status not in (403, 404, 405)}
    assert not accepted, f"POSTs answered without the CSRF token: {accepted}"
    after = (
        Space.objects.get(pk=space.pk).token_hash,
        InferenceRequest.objects.count(),
        get_user_model().objects.count(),
    )
    assert before == after


@pytest.fixture
def hostile(make_space: Any, alice: Any) -> dict[str, Any]:
    """Requests whose prompt, input file, output, result file and error message are all script payloads."""
    space, _ = make_space("Ears", title="Ears", feature_files=True)
    connect_app(space)
    client = Client()
    client.force_login(alice)
    upload = SimpleUploadedFile(PAYLOADS["file"], b"hello", content_type="text/plain")
    made = []
    for _ in range(2):
        answer = client.post("/spaces/ears/requests/", {"prompt": PAYLOADS["prompt"], "files": [upload]}, **JSON)
        assert answer.status_code == 201, answer.content
        upload.seek(0)
        made.append(answer.json()["id"])
    queue.claim_next(space, "conn-1")
    records = files.save_outputs(made[0], [ResultFile(PAYLOADS["result file"], "text/html", b"<script>x</script>")])
    queue.finish(made[0], "conn-1", {"text": PAYLOADS["output"], "files": files.output_entries(records)})
    RequestFile.objects.bulk_create(records)
    queue.claim_next(space, "conn-1")
    queue.fail(made[1], "conn-1", PAYLOADS["error"])
    return {"client": client, "ids": made, "file": records[0]}


def test_hostile_text_is_escaped_on_every_page_that_shows_it(hostile: dict[str, Any], staff: Any) -> None:
    client, (done, failed) = hostile["client"], hostile["ids"]
    pages = [f"/spaces/ears/?request={done}", f"/spaces/ears/?request={failed}", "/requests/", "/"]
    admin = Client()
    admin.force_login(get_user_model().objects.create_superuser("root", "root@example.com", "root-password"))
    for path in pages:
        html = client.get(path).content.decode()
        assert not [m for m in MARKERS if m in html], f"{path} shows a payload unescaped"
    for path in ["/admin/relay/inferencerequest/", f"/admin/relay/inferencerequest/{done}/change/"]:
        response = admin.get(path)
        if response.status_code == 200:
            assert not [m for m in MARKERS if m in response.content.decode()], f"{path} shows a payload unescaped"
    api = client.get(f"/api/requests/{done}/")
    assert api["Content-Type"] == "application/json" and api["X-Content-Type-Options"] == "nosniff"
    assert api.json()["outputs"]["text"] == PAYLOADS["output"], "kept as data, to be shown as text"


def test_a_result_file_is_an_attachment_whatever_its_name_and_type(hostile: dict[str, Any]) -> None:
    client, record = hostile["client"], hostile["file"]
    response = client.get(f"/api/requests/{hostile['ids'][0]}/files/{record.id}/")
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment;")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "\n" not in response["Content-Disposition"] and "<svg" not in response["Content-Disposition"].split(";")[0]


def test_a_prompt_with_a_nul_is_refused_as_invalid(make_space: Any, alice: Any) -> None:
    space, _ = make_space("Echo")
    connect_app(space)
    client = Client()
    client.force_login(alice)
    response = client.post("/spaces/echo/requests/", {"prompt": "a\x00b"}, **JSON)
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid"
    upload = SimpleUploadedFile("../../a\x00b.txt", b"x", content_type="text/plain")
    make_space("Files", feature_prompt=False, feature_files=True)
    connect_app(Space.objects.get(name="Files"), "conn-2")
    response = client.post("/spaces/files/requests/", {"files": [upload]}, **JSON)
    assert response.status_code == 201, response.content
    stored = RequestFile.objects.get(request_id=response.json()["id"])
    assert stored.name == "ab.txt" and "/" not in stored.file.name.removeprefix("relay/")[37:]

"""RELAY_ACCEL_REDIRECT_PREFIX: after the access check, nginx sends the file (X-Accel-Redirect).

The whole path through a real nginx is in tests/e2e/test_nginx.py; the default (the hub streams
the file itself) in test_files.py.
"""

from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.test import Client

from relay import files
from relay.models import InferenceRequest, RequestFile

pytestmark = pytest.mark.django_db


@pytest.fixture
def accel(settings: Any) -> None:
    settings.RELAY_ACCEL_REDIRECT_PREFIX = "/media/"


def stored(req: InferenceRequest, role: str, name: str, content_type: str, data: bytes) -> RequestFile:
    record = RequestFile(request=req, role=role, field="files", name=name, content_type=content_type, size=len(data))
    record.file.save("upload", ContentFile(data))
    return record


@pytest.fixture
def req(make_space: Any, alice: Any) -> InferenceRequest:
    space, _ = make_space("Echo", feature_files=True)
    return InferenceRequest.objects.create(space=space, user=alice, inputs={})


def test_it_hands_an_input_file_to_nginx(accel: None, req: InferenceRequest) -> None:
    record = stored(req, RequestFile.Role.INPUT, "notes.txt", "text/plain", b"hello")
    response = Client().get(f"/relay/files/{files.sign_input(record)}/")
    assert response.status_code == 200
    assert response["X-Accel-Redirect"] == f"/media/{record.file.name}"
    assert response.content == b"", "nginx sends the bytes"
    assert response["Content-Type"] == "text/plain"
    assert response["Content-Disposition"] == 'attachment; filename="notes.txt"'
    assert (response["X-Content-Type-Options"], response["Cache-Control"]) == ("nosniff", "private, no-store")


def test_it_hands_a_result_file_to_nginx_for_its_owner_only(
    accel: None, req: InferenceRequest, alice: Any, bob: Any
) -> None:
    record = stored(req, RequestFile.Role.OUTPUT, "résumé <x>.html", "text/html", b"<b>hi</b>")
    path = f"/api/requests/{req.pk}/files/{record.pk}/"
    owner, other = Client(), Client()
    owner.force_login(alice)
    other.force_login(bob)
    response = owner.get(path)
    assert response["X-Accel-Redirect"] == f"/media/{record.file.name}"
    assert response["Content-Disposition"].startswith("attachment; filename*=utf-8''r%C3%A9sum%C3%A9")
    refused = other.get(path)
    assert refused.status_code == 404
    assert "X-Accel-Redirect" not in refused


def test_it_hands_nothing_to_nginx_for_a_bad_link(accel: None, req: InferenceRequest) -> None:
    record = stored(req, RequestFile.Role.INPUT, "notes.txt", "text/plain", b"hello")
    response = Client().get(f"/relay/files/{files.sign_input(record)}x/")
    assert response.status_code == 404
    assert "X-Accel-Redirect" not in response

"""GET /api/requests/<id>/ and POST /api/requests/<id>/cancel/: the submitter and staff only."""

import uuid
from typing import Any

import pytest
from django.test import Client

from relay import queue
from tests.relay.helpers import connect_app, reload, submit


@pytest.fixture
def req(make_space: Any, alice: Any) -> Any:
    space, _ = make_space("Echo")
    connect_app(space)
    return submit(space, alice, "hello")


def test_it_shows_the_state_to_its_submitter(client: Client, alice: Any, req: Any) -> None:
    client.force_login(alice)
    body = client.get(f"/api/requests/{req.id}/").json()
    assert body["id"] == str(req.id)
    assert body["space"] == "echo"
    assert body["status"] == "queued"
    assert body["position"] == 1
    assert body["outputs"] is None and body["error"] is None
    assert body["created_at"].endswith("Z") and body["started_at"] is None


def test_it_shows_any_request_to_staff(client: Client, staff: Any, req: Any) -> None:
    client.force_login(staff)
    assert client.get(f"/api/requests/{req.id}/").status_code == 200


def test_it_404s_for_other_users_anonymous_and_unknown_ids(client: Client, bob: Any, req: Any) -> None:
    assert client.get(f"/api/requests/{req.id}/").status_code == 404
    client.force_login(bob)
    response = client.get(f"/api/requests/{req.id}/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert client.get(f"/api/requests/{uuid.uuid4()}/").status_code == 404
    assert client.post(f"/api/requests/{req.id}/cancel/", HTTP_ACCEPT="application/json").status_code == 404
    assert reload(req).status == "queued"


def test_it_cancels_a_queued_request(client: Client, alice: Any, req: Any) -> None:
    client.force_login(alice)
    response = client.post(f"/api/requests/{req.id}/cancel/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "cancelled"
    assert body["error"]["code"] == "cancelled"
    again = client.post(f"/api/requests/{req.id}/cancel/", HTTP_ACCEPT="application/json")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "not_cancellable"


def test_it_cancels_a_running_request(client: Client, staff: Any, req: Any) -> None:
    outcome = queue.claim_next(req.space, "conn-1")
    assert outcome.request.id == req.id
    client.force_login(staff)
    response = client.post(f"/api/requests/{req.id}/cancel/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    assert reload(req).status == "cancelled"


def test_it_needs_post_and_csrf_to_cancel(alice: Any, req: Any) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert client.get(f"/api/requests/{req.id}/cancel/").status_code == 405
    assert client.post(f"/api/requests/{req.id}/cancel/").status_code == 403
    assert reload(req).status == "queued"


def test_the_html_cancel_button_redirects_back(client: Client, alice: Any, req: Any) -> None:
    client.force_login(alice)
    response = client.post(f"/api/requests/{req.id}/cancel/")
    assert response.status_code == 303
    assert response["Location"] == f"/spaces/echo/?request={req.id}"

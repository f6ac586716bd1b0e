"""GET /requests/: a person's own requests across spaces."""

from typing import Any

from django.test import Client

from relay import queue
from tests.relay.helpers import connect_app, submit


def test_it_lists_only_my_requests_across_spaces(client: Client, make_space: Any, alice: Any, bob: Any) -> None:
    echo, _ = make_space("Echo")
    draw, _ = make_space("Draw", title="Draw things")
    connect_app(echo, "c1")
    connect_app(draw, "c2")
    mine = [submit(echo, alice, "one"), submit(draw, alice, "two")]
    theirs = submit(echo, bob, "secret")
    queue.claim_next(echo, "c1")
    queue.finish(mine[0].id, "c1", {"text": "done"})
    client.force_login(alice)
    page = client.get("/requests/").content.decode()
    for req in mine:
        assert f"?request={req.id}" in page
    assert str(theirs.id) not in page
    assert "Draw things" in page and "succeeded" in page


def test_it_sends_anonymous_users_to_log_in(client: Client, db: Any) -> None:
    response = client.get("/requests/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")

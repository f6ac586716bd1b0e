"""manage.py relay_sweep: one pass of the idempotent sweep."""

from datetime import timedelta
from io import StringIO
from typing import Any

from django.core.management import call_command
from django.utils import timezone

from relay import queue
from relay.models import AppLease
from tests.relay.helpers import connect_app, reload, submit


def test_it_requeues_a_dead_connections_request(make_space: Any, alice: Any) -> None:
    space, _ = make_space("Echo")
    connect_app(space)
    req = submit(space, alice)
    queue.claim_next(space, "conn-1")
    AppLease.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    out = StringIO()
    call_command("relay_sweep", stdout=out)
    assert reload(req).status == "queued"
    assert "1 request(s) changed" in out.getvalue()
    out = StringIO()
    call_command("relay_sweep", stdout=out)
    assert "0 request(s) changed" in out.getvalue()

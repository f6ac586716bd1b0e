"""GET /metrics: Prometheus metrics from the database, for staff and allow-listed addresses only."""

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from relay.models import AppLease, InferenceRequest, Status
from tests.relay.helpers import connect_app

pytestmark = pytest.mark.django_db


def scrape(client: Client, **extra: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics", **extra)
    assert response.status_code == 200, response.content
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def test_it_refuses_an_anonymous_caller(client: Client) -> None:
    response = client.get("/metrics")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"


def test_it_refuses_a_user_who_is_not_staff(client: Client, alice: Any) -> None:
    client.force_login(alice)
    assert client.get("/metrics").status_code == 403


def test_it_refuses_an_address_outside_the_allow_list(client: Client, settings: Any) -> None:
    settings.METRICS_ALLOWED_IPS = ["10.0.0.0/8", "2001:db8::1"]
    assert client.get("/metrics", REMOTE_ADDR="192.0.2.1").status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="not-an-address").status_code == 403


def test_it_serves_staff(client: Client, staff: Any) -> None:
    client.force_login(staff)
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    assert response["Cache-Control"] == "no-store"


def test_it_serves_an_allow_listed_address(client: Client, settings: Any) -> None:
    settings.METRICS_ALLOWED_IPS = ["10.0.0.0/8", "2001:db8::1"]
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="2001:db8::1").status_code == 200


def test_it_speaks_openmetrics_when_asked(client: Client, staff: Any) -> None:
    client.force_login(staff)
    response = client.get("/metrics", HTTP_ACCEPT="application/openmetrics-text; version=1.0.0")
    assert response["Content-Type"].startswith("application/openmetrics-text")
    assert response.content.endswith(b"# EOF\n")


def test_it_refuses_post(client: Client, staff: Any) -> None:
    client.force_login(staff)
    assert client.post("/metrics").status_code == 405


def add(
    space: Any,
    user: Any,
    status: str,
    total: float | None = None,
    processing: float | None = None,
    ago: timedelta = timedelta(minutes=5),
) -> None:
    """A request that finished `ago`, `total` seconds after it was submitted and `processing` after it was sent."""
    req = InferenceRequest.objects.create(space=space, user=user, status=status)
    if total is None:
        return
    finished = timezone.now() - ago
    InferenceRequest.objects.filter(pk=req.pk).update(
        created_at=finished - timedelta(seconds=total),
        started_at=finished - timedelta(seconds=processing) if processing is not None else None,
        finished_at=finished,
    )


def test_it_counts_a_known_state(client: Client, staff: Any, alice: Any, make_space: Any) -> None:
    echo, _ = make_space("Echo")
    draw, _ = make_space("Draw")
    old, _ = make_space("Old", is_active=False)
    connect_app(echo)
    connect_app(draw, "conn-2")
    AppLease.objects.filter(space=draw).update(expires_at=timezone.now() - timedelta(seconds=1))  # lapsed

    add(echo, alice, Status.QUEUED)
    add(echo, alice, Status.QUEUED)
    add(echo, alice, Status.RUNNING)
    add(echo, alice, Status.SUCCEEDED, total=0.2, processing=0.1)
    add(echo, alice, Status.SUCCEEDED, total=3, processing=2)
    add(echo, alice, Status.SUCCEEDED, total=45, processing=40)
    add(echo, alice, Status.FAILED, total=0.4, processing=0.3)
    add(echo, alice, Status.TIMED_OUT, total=200, processing=121)
    add(draw, alice, Status.QUEUED)
    add(draw, alice, Status.CANCELLED, total=7)  # cancelled while queued: never sent to the app
    add(old, alice, Status.SUCCEEDED, total=1, processing=1)
    # Finished two days ago: in the totals, not in the 24-hour histograms.
    add(echo, alice, Status.SUCCEEDED, total=1, processing=1, ago=timedelta(days=2))

    client.force_login(staff)
    m = scrape(client)

    def at(name: str, **labels: str) -> float:
        return m[(name, tuple(sorted(labels.items())))]

    assert (at("spacehub_app_connected", space="Echo"), at("spacehub_app_connected", space="Draw")) == (1, 0)
    assert ("spacehub_app_connected", (("space", "Old"),)) not in m, "inactive spaces are left out"
    assert (at("spacehub_queue_depth", space="Echo"), at("spacehub_queue_depth", space="Draw")) == (2, 1)

    totals = {labels: v for (name, labels), v in m.items() if name == "spacehub_requests_total"}
    assert totals == {
        (("space", "Draw"), ("status", "cancelled")): 1,
        (("space", "Echo"), ("status", "failed")): 1,
        (("space", "Echo"), ("status", "succeeded")): 4,
        (("space", "Echo"), ("status", "timed_out")): 1,
        (("space", "Old"), ("status", "succeeded")): 1,
    }

    e2e = "spacehub_request_duration_seconds_bucket"
    assert at(e2e, space="Echo", le="0.25") == 1
    assert at(e2e, space="Echo", le="0.5") == 2
    assert at(e2e, space="Echo", le="5.0") == 3
    assert at(e2e, space="Echo", le="60.0") == 4
    assert at(e2e, space="Echo", le="300.0") == 5
    assert at(e2e, space="Echo", le="+Inf") == 5
    assert at("spacehub_request_duration_seconds_gcount", space="Echo") == 5
    assert at("spacehub_request_duration_seconds_gsum", space="Echo") == pytest.approx(0.2 + 3 + 45 + 0.4 + 200)
    assert at(e2e, space="Draw", le="10.0") == 1

    busy = "spacehub_request_processing_seconds_bucket"
    assert at(busy, space="Echo", le="0.1") == 1
    assert at(busy, space="Echo", le="0.5") == 2
    assert at(busy, space="Echo", le="2.5") == 3
    assert at(busy, space="Echo", le="120.0") == 4
    assert at(busy, space="Echo", le="300.0") == 5
    assert at("spacehub_request_processing_seconds_gsum", space="Echo") == pytest.approx(0.1 + 2 + 40 + 0.3 + 121)
    assert ("spacehub_request_processing_seconds_gcount", (("space", "Draw"),)) not in m, "never sent to an app"

"""Prometheus metrics at /metrics, computed at scrape time from the database.

Several daphne processes serve behind one nginx, and a scrape reaches any one of them, so
nothing here is counted in a process's memory: every number comes from PostgreSQL when the
scrape arrives, and every process gives the same answer.

- `spacehub_app_connected{space}`: 1 while the space's app holds a live lease, else 0 (active spaces).
- `spacehub_queue_depth{space}`: queued requests (active spaces).
- `spacehub_requests_total{space,status}`: finished requests by final status, over the whole table.
- `spacehub_request_duration_seconds{space}`: end to end (submitted to finished), and
  `spacehub_request_processing_seconds{space}`: sent to the app to finished; both gauge
  histograms over the requests finished in the last `WINDOW` (a window, not a counter: use
  `histogram_quantile` on the buckets directly, without `rate()`).
"""

import ipaddress
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, DurationField, ExpressionWrapper, F, Q, Sum
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_GET
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeHistogramMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder

from relay import errors, queue
from relay.models import FINAL_STATUSES, InferenceRequest, Status
from spaces.models import Space

WINDOW = timedelta(hours=24)
# Seconds. Requests range from an echo (well under a second) to a space's timeout (up to a day).
BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 24 * 3600)


def _histogram(name: str, doc: str, start_field: str, since: Any) -> GaugeHistogramMetricFamily:
    """Bucket counts by conditional COUNTs in one query, grouped by space."""
    elapsed = ExpressionWrapper(F("finished_at") - F(start_field), output_field=DurationField())
    counts = {f"le_{i}": Count("pk", filter=Q(elapsed__lte=timedelta(seconds=le))) for i, le in enumerate(BUCKETS)}
    rows = (
        InferenceRequest.objects.filter(finished_at__gte=since, **{f"{start_field}__isnull": False})
        .alias(elapsed=elapsed)
        .values("space__name")
        .annotate(total=Count("pk"), elapsed_sum=Sum("elapsed"), **counts)
        .order_by("space__name")
    )
    family = GaugeHistogramMetricFamily(name, doc, labels=["space"], unit="seconds")
    for row in rows:
        buckets = [(_le(le), row[f"le_{i}"]) for i, le in enumerate(BUCKETS)]
        buckets.append(("+Inf", row["total"]))
        total = row["elapsed_sum"] or timedelta(0)
        family.add_metric([row["space__name"]], buckets, gsum_value=total.total_seconds())
    return family


def _le(bound: float) -> str:
    return str(float(bound))


class DatabaseCollector:
    """Reads the relay's state from the database on every collect()."""

    def collect(self) -> Iterator[Metric]:
        spaces = dict(Space.objects.active().values_list("pk", "name"))

        connected = GaugeMetricFamily(
            "spacehub_app_connected", "1 while the space's app is connected.", labels=["space"]
        )
        live = set(queue.live_leases().values_list("space_id", flat=True))
        for pk, name in sorted(spaces.items(), key=lambda item: item[1]):
            connected.add_metric([name], 1 if pk in live else 0)
        yield connected

        depth = GaugeMetricFamily("spacehub_queue_depth", "Requests waiting in the space's queue.", labels=["space"])
        queued = dict(
            InferenceRequest.objects.filter(status=Status.QUEUED)
            .values("space_id")
            .annotate(n=Count("pk"))
            .values_list("space_id", "n")
        )
        for pk, name in sorted(spaces.items(), key=lambda item: item[1]):
            depth.add_metric([name], queued.get(pk, 0))
        yield depth

        finished = CounterMetricFamily(
            "spacehub_requests", "Finished requests by final status.", labels=["space", "status"]
        )
        for name, status, n in (
            InferenceRequest.objects.filter(status__in=FINAL_STATUSES)
            .values("space__name", "status")
            .annotate(n=Count("pk"))
            .values_list("space__name", "status", "n")
            .order_by("space__name", "status")
        ):
            finished.add_metric([name, status], n)
        yield finished

        since = timezone.now() - WINDOW
        yield _histogram(
            "spacehub_request_duration",
            "Submitted to finished, for requests finished in the last 24 hours.",
            "created_at",
            since,
        )
        yield _histogram(
            "spacehub_request_processing",
            "Sent to the app (last attempt) to finished, for requests finished in the last 24 hours.",
            "started_at",
            since,
        )


registry = CollectorRegistry(auto_describe=False)
registry.register(DatabaseCollector())


def may_scrape(request: HttpRequest) -> bool:
    """Staff, or a client address in METRICS_ALLOWED_IPS."""
    if request.user.is_authenticated and request.user.is_staff:
        return True
    try:
        addr = ipaddress.ip_address(request.META.get("REMOTE_ADDR") or "")
    except ValueError:
        return False
    return any(addr in ipaddress.ip_network(net, strict=False) for net in settings.METRICS_ALLOWED_IPS)


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    if not may_scrape(request):
        exc = errors.Forbidden("Metrics are for staff and the addresses in METRICS_ALLOWED_IPS.")
        return JsonResponse({"error": exc.as_dict()}, status=exc.http_status)
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    response = HttpResponse(encoder(registry), content_type=content_type)
    response["Cache-Control"] = "no-store"
    return response

"""Operators' logs: one logfmt line per request lifecycle event and app connect/disconnect (relay.queue),
printed by the LOGGING config in production, as plain text or (LOG_FORMAT=json) one JSON object a line."""

import json
import logging
import os
import subprocess
import sys
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from relay import errors, queue
from relay.models import InferenceRequest
from tests.live import ROOT
from tests.relay.helpers import connect_app, submit


def fields(line: str) -> dict[str, str]:
    """A logfmt line without quoted values, as a dict."""
    return dict(part.split("=", 1) for part in line.split(" "))


def lifecycle_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, str]]:
    return [fields(r.getMessage()) for r in caplog.records if r.name == "relay.queue" and r.levelno == logging.INFO]


@pytest.mark.django_db
def test_it_logs_every_lifecycle_event(caplog: pytest.LogCaptureFixture, make_space: Any, alice: Any) -> None:
    space, _ = make_space("Echo")
    caplog.set_level(logging.INFO, logger="relay.queue")

    connect_app(space, "conn-1")
    first = submit(space, alice, "one")
    queue.claim_next(space, "conn-1")
    queue.requeue(first.pk, "conn-1")
    queue.claim_next(space, "conn-1")
    queue.finish(first.pk, "conn-1", {"text": "done"})
    second = submit(space, alice, "two")
    queue.claim_next(space, "conn-1")
    InferenceRequest.objects.filter(pk=second.pk).update(deadline=timezone.now() - timedelta(seconds=1))
    queue.time_out(second.pk)
    queue.release_lease(space.pk, "conn-1")

    lines = lifecycle_lines(caplog)
    assert [line["event"] for line in lines] == [
        "app.connected",
        "request.submitted",
        "request.dispatched",
        "request.requeued",
        "request.dispatched",
        "request.finished",
        "request.submitted",
        "request.dispatched",
        "request.timed_out",
        "app.disconnected",
    ]
    assert lines[0] == {"event": "app.connected", "space": "Echo", "conn": "conn-1", "addr": "127.0.0.1"}
    submitted = {
        "event": "request.submitted",
        "id": str(first.pk),
        "space": "Echo",
        "user": str(alice.pk),
        "files": "0",
    }
    assert lines[1] == submitted
    assert (lines[3]["id"], lines[3]["attempt"], lines[3]["conn"]) == (str(first.pk), "1", "conn-1")
    assert (lines[4]["attempt"], lines[5]["status"], lines[5]["code"]) == ("2", "succeeded", "-")
    assert float(lines[5]["total"]) >= float(lines[5]["processing"]) >= 0
    assert (lines[8]["id"], lines[8]["status"], lines[8]["code"]) == (str(second.pk), "timed_out", "timed_out")
    assert lines[9] == {"event": "app.disconnected", "space_id": str(space.pk), "conn": "conn-1"}


@pytest.mark.django_db
def test_it_does_not_log_a_refused_submission(caplog: pytest.LogCaptureFixture, make_space: Any, alice: Any) -> None:
    space, _ = make_space("Echo")
    caplog.set_level(logging.INFO, logger="relay.queue")
    with pytest.raises(errors.AppNotConnected):
        queue.enqueue(space, alice, {"prompt": "nobody listens"})
    assert lifecycle_lines(caplog) == []


LOG_ONE = (
    "import django; django.setup()\n"
    "from relay import queue\n"
    "queue._log('request.finished', id='42', space='Echo Space', status='succeeded', total=1.5)\n"
    "import logging\n"
    "try:\n"
    "    1 / 0\n"
    "except ZeroDivisionError:\n"
    "    logging.getLogger('relay.sweeper').exception('relay sweep failed')\n"
)


def run_hub_python(**env: str) -> list[str]:
    """Run a few lines with the hub's own settings (as daphne would), and return what it printed."""
    result = subprocess.run(
        [sys.executable, "-c", LOG_ONE],
        cwd=ROOT,
        env={"PATH": os.environ.get("PATH", ""), "DJANGO_SETTINGS_MODULE": "spacehub.settings", "DEBUG": "1", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stderr.splitlines()


def test_it_prints_the_lines_by_default() -> None:
    lines = run_hub_python()
    assert lines[0].endswith(
        ' INFO relay.queue event=request.finished id=42 space="Echo Space" status=succeeded total=1.500'
    )
    assert " ERROR relay.sweeper relay sweep failed" in lines[1]
    assert lines[-1] == "ZeroDivisionError: division by zero"


def test_it_prints_one_json_object_a_line_with_log_format_json() -> None:
    lines = run_hub_python(LOG_FORMAT="json")
    assert len(lines) == 2, "the traceback stays inside its record's line"
    finished, failed = (json.loads(line) for line in lines)
    assert finished["level"] == "INFO"
    assert finished["logger"] == "relay.queue"
    assert finished["message"] == 'event=request.finished id=42 space="Echo Space" status=succeeded total=1.500'
    assert finished["time"].endswith("+00:00")
    assert (failed["level"], failed["logger"], failed["message"]) == ("ERROR", "relay.sweeper", "relay sweep failed")
    assert failed["exc_info"].endswith("ZeroDivisionError: division by zero")


def test_it_keeps_quiet_below_log_level() -> None:
    assert run_hub_python(LOG_LEVEL="WARNING")[0].endswith(" ERROR relay.sweeper relay sweep failed")

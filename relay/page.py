"""What the relay adds to a space page (registered in RelayConfig.ready), and the "my requests" list."""

from typing import Any

from django.http import HttpRequest
from django.utils.translation import gettext as _

from relay import queue
from relay.events import request_state
from relay.models import InferenceRequest, Status
from spaces.models import Space

RECENT_REQUESTS = 10


def status_labels() -> dict[str, str]:
    return {value: str(label) for value, label in Status.choices}


def page_strings() -> dict[str, Any]:
    """The page script's words, translated on the server (no inline script: given via json_script)."""
    return {
        "connected": _("App connected"),
        "not_connected": _("App not connected"),
        "not_connected_reason": _("No app is connected to this space right now. Try again when it is online."),
        "hub_unreachable": _("The hub cannot be reached. Retrying…"),
        "position": _("Position in queue: %(position)s"),
        "timed_out": _("Timed out: the app did not finish within %(seconds)s seconds."),
        "app_error": _("The app reported an error: %(message)s"),
        "app_disconnected": _("The app disconnected and did not come back in time."),
        "cancelled": _("Cancelled."),
        "http_error": _("The hub answered with an error (HTTP %(status)s)."),
        "status": status_labels(),
    }


def space_page_context(request: HttpRequest, space: Space) -> dict[str, Any]:
    status = queue.space_status(space.pk)
    recent: list[dict[str, Any]] = []
    if request.user.is_authenticated:
        mine = InferenceRequest.objects.select_related("space").filter(space=space, user=request.user)
        recent = [request_state(r, queue.position(r)) for r in mine.order_by("-created_at")[:RECENT_REQUESTS]]
    wanted = request.GET.get("request")
    selected = next((s for s in recent if s["id"] == wanted), None)
    if selected is None and wanted is None and recent:
        selected = recent[0]
    return {
        "connected": status["connected"],
        "queue_size": status["queue_size"],
        "recent_requests": recent,
        "selected_request": selected,
        "status_labels": status_labels(),
        "space_config": {
            "slug": space.slug,
            "connected": status["connected"],
            "timeout_seconds": space.timeout_seconds,
            "space_stream": f"/ws/spaces/{space.slug}/",
            "requests": recent,
            "strings": page_strings(),
        },
    }

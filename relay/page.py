"""What the relay adds to a space page (registered in RelayConfig.ready)."""

from typing import Any

from django.http import HttpRequest

from relay import queue
from relay.events import request_state
from relay.models import InferenceRequest
from spaces.models import Space

RECENT_REQUESTS = 10


def space_page_context(request: HttpRequest, space: Space) -> dict[str, Any]:
    status = queue.space_status(space.pk)
    context: dict[str, Any] = {
        "connected": status["connected"],
        "queue_size": status["queue_size"],
        "recent_requests": [],
        "selected_request": None,
    }
    if request.user.is_authenticated:
        mine = InferenceRequest.objects.select_related("space").filter(space=space, user=request.user)
        recent = list(mine.order_by("-created_at")[:RECENT_REQUESTS])
        context["recent_requests"] = [request_state(r, queue.position(r)) for r in recent]
        wanted = request.GET.get("request")
        selected = next((s for s in context["recent_requests"] if s["id"] == wanted), None)
        if selected is None and recent:
            selected = context["recent_requests"][0] if wanted is None else None
        context["selected_request"] = selected
    return context

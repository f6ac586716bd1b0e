"""HTTP endpoints of the relay: submit, status, cancel, files, health (PROTOCOL.md section 2)."""

import asyncio
import logging
from typing import Any
from urllib.parse import quote

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core import signing
from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.core.paginator import Paginator
from django.db import connection
from django.http import FileResponse, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import content_disposition_header
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_POST

from relay import errors, files, limits, queue
from relay.events import Outcome, publish_sync, request_state
from relay.models import InferenceRequest, RequestFile
from spaces.forms import RequestForm
from spaces.models import Space
from spaces.views import render_space

log = logging.getLogger("relay.views")


def wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def see_other(url: str) -> HttpResponseRedirect:
    """303: the browser follows with a GET (after a POST)."""
    response = HttpResponseRedirect(url)
    response.status_code = 303
    return response


def error_response(exc: errors.RelayError) -> JsonResponse:
    return JsonResponse({"error": exc.as_dict()}, status=exc.http_status)


class UploadLimitHandler(FileUploadHandler):
    """Cuts an upload off as soon as its body passes the space's limit."""

    def __init__(self, request: HttpRequest, limit: int) -> None:
        super().__init__(request)
        self.limit = limit
        self.received = 0
        self.exceeded = False

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes | None:
        self.received += len(raw_data)
        if self.received > self.limit:
            self.exceeded = True
            raise StopUpload(connection_reset=True)
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None


def _user_requests(request: HttpRequest) -> Any:
    qs = InferenceRequest.objects.select_related("space")
    return qs if request.user.is_staff else qs.filter(user=request.user)


@csrf_exempt  # checked below, after the upload limit is in place (Django's documented order)
@require_POST
def submit(request: HttpRequest, slug: str) -> HttpResponse:
    space = get_object_or_404(Space.objects.active(), slug=slug)
    if not request.user.is_authenticated:
        if wants_json(request):
            return error_response(errors.Forbidden(_("Log in to submit.")))
        return redirect(f"{reverse('login')}?next={space.get_absolute_url()}")
    limit = space.max_upload_mb * 1024 * 1024
    if int(request.META.get("CONTENT_LENGTH") or 0) > limit + 64 * 1024:
        return _too_large(request, space)
    handler = UploadLimitHandler(request, limit)
    request.upload_handlers.insert(0, handler)
    return _submit(request, space, handler)


@csrf_protect
def _submit(request: HttpRequest, space: Space, handler: UploadLimitHandler) -> HttpResponse:
    form = RequestForm(space, request.POST, request.FILES)
    if handler.exceeded:
        return _too_large(request, space)
    try:
        if not form.is_valid():
            raise errors.Invalid(fields={k: [str(m) for m in v] for k, v in form.errors.items()})
        if form.total_upload_size() > space.max_upload_mb * 1024 * 1024:
            raise errors.TooLarge(_("The upload is larger than %(mb)s MB.") % {"mb": space.max_upload_mb})
        inputs, uploads = form.inputs_and_files()
        outcome = _enqueue_within_rate(request, space, inputs, uploads)
    except errors.RelayError as exc:
        if wants_json(request):
            return error_response(exc)
        return render_space(request, space, form=form, error=exc.message, status=exc.http_status)
    publish_sync(outcome)
    req = outcome.request
    assert req is not None
    if wants_json(request):
        return JsonResponse(
            {
                "id": str(req.id),
                "status": req.status,
                "position": outcome.position,
                "stream": f"/ws/requests/{req.id}/",
                "status_url": reverse("relay:request_api", args=[req.id]),
            },
            status=201,
        )
    return see_other(f"{space.get_absolute_url()}?request={req.id}")


def _enqueue_within_rate(
    request: HttpRequest, space: Space, inputs: dict[str, Any], uploads: list[dict[str, Any]]
) -> Outcome:
    """Count the submission first (one atomic increment, so concurrent ones cannot all pass), then enqueue.

    Only accepted submissions count: a refusal (rate, 409 while an app reconnects, a full queue) takes its
    count back, so retrying locks nobody out.
    """
    bucket = limits.reserve(f"submit:{request.user.pk}", limits.submits_per_minute())
    if bucket is None:
        raise errors.RateLimited(_("You are submitting too fast: wait a minute and try again."))
    try:
        return queue.enqueue(space, request.user, inputs, uploads)
    except BaseException:
        limits.release(bucket)
        raise


def _too_large(request: HttpRequest, space: Space) -> HttpResponse:
    exc = errors.TooLarge(_("The upload is larger than %(mb)s MB.") % {"mb": space.max_upload_mb})
    if wants_json(request):
        return error_response(exc)
    return render_space(request, space, error=exc.message, status=413)


@login_required
@require_GET
def my_requests(request: HttpRequest) -> HttpResponse:
    """The person's own requests across spaces, newest first."""
    qs = InferenceRequest.objects.select_related("space").filter(user=request.user).order_by("-created_at")
    page = Paginator(qs, 50).get_page(request.GET.get("page"))
    for req in page.object_list:
        end = req.finished_at
        req.duration = (end - req.created_at).total_seconds() if end else None
    return render(request, "relay/my_requests.html", {"page_obj": page})


@require_GET
def space_api(request: HttpRequest, slug: str) -> JsonResponse:
    space = Space.objects.active().filter(slug=slug).first()
    if space is None:
        return error_response(errors.NotFound(_("No such space.")))
    status = queue.space_status(space.pk)
    return JsonResponse(
        {
            "slug": space.slug,
            "name": space.name,
            "title": space.display_title,
            "connected": status["connected"],
            "queue_size": status["queue_size"],
            "features": space.features,
            "timeout_seconds": space.timeout_seconds,
            "max_upload_mb": space.max_upload_mb,
        }
    )


def _owned_request(request: HttpRequest, request_id: Any) -> InferenceRequest:
    if not request.user.is_authenticated:
        raise errors.NotFound(_("No such request."))
    req = _user_requests(request).filter(pk=request_id).first()
    if req is None:
        raise errors.NotFound(_("No such request."))
    return req


@require_GET
def request_api(request: HttpRequest, request_id: Any) -> JsonResponse:
    try:
        req = _owned_request(request, request_id)
    except errors.RelayError as exc:
        return error_response(exc)
    return JsonResponse(request_state(req, queue.position(req)))


@require_POST
def cancel_api(request: HttpRequest, request_id: Any) -> HttpResponse:
    try:
        req = _owned_request(request, request_id)
        outcome = queue.cancel(req.pk)
        if not outcome.won:
            raise errors.NotCancellable()
    except errors.RelayError as exc:
        if wants_json(request) or exc.http_status == 404:
            return error_response(exc)
        return see_other(f"{req.space.get_absolute_url()}?request={req.pk}")
    publish_sync(outcome)
    assert outcome.request is not None
    if not wants_json(request) and request.content_type != "application/json":
        return see_other(f"{outcome.request.space.get_absolute_url()}?request={req.pk}")
    return JsonResponse(request_state(outcome.request))


@require_GET
def input_file(request: HttpRequest, signed: str) -> HttpResponse:
    """An input file for the app, by signed URL, while its request is in flight."""
    try:
        data = files.unsign_input(signed, max_age=getattr(settings, "RELAY_FILE_URL_MAX_AGE", 24 * 3600))
    except signing.BadSignature:
        return error_response(errors.NotFound(_("This file link is not valid or has expired.")))
    record = RequestFile.objects.filter(pk=data["f"], request_id=data["r"], role=RequestFile.Role.INPUT).first()
    if record is None or record.request.is_final:  # links die with the request
        return error_response(errors.NotFound(_("This file link is not valid or has expired.")))
    return _serve(record)


@login_required
@require_GET
def result_file(request: HttpRequest, request_id: Any, file_id: Any) -> HttpResponse:
    try:
        req = _owned_request(request, request_id)
    except errors.RelayError as exc:
        return error_response(exc)
    record = get_object_or_404(RequestFile, pk=file_id, request=req)
    return _serve(record)


def _serve(record: RequestFile) -> HttpResponse:
    prefix = getattr(settings, "RELAY_ACCEL_REDIRECT_PREFIX", "")
    if prefix:
        # The check passed: nginx sends the file from its `internal` location (deploy/nginx.conf).
        response = HttpResponse(content_type=record.content_type)
        response["X-Accel-Redirect"] = prefix.rstrip("/") + "/" + quote(record.file.name)
        response["Content-Disposition"] = content_disposition_header(True, record.name)
    else:
        response = FileResponse(
            record.file.open("rb"), as_attachment=True, filename=record.name, content_type=record.content_type
        )
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, no-store"
    return response


async def _layer_round_trip() -> None:
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "health.ping"})
    await asyncio.wait_for(layer.receive(channel), timeout=2)


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    checks: dict[str, str] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"error: {exc.__class__.__name__}"
    try:
        async_to_sync(_layer_round_trip)()
        checks["channel_layer"] = "ok"
    except Exception as exc:
        checks["channel_layer"] = f"error: {exc.__class__.__name__}"
    healthy = all(v == "ok" for v in checks.values())
    return JsonResponse({"status": "ok" if healthy else "error", **checks}, status=200 if healthy else 503)

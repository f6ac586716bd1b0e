import uuid
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from spaces.models import Space


class Status(models.TextChoices):
    QUEUED = "queued", _("queued")
    RUNNING = "running", _("running")
    SUCCEEDED = "succeeded", _("succeeded")
    FAILED = "failed", _("failed")
    TIMED_OUT = "timed_out", _("timed out")
    CANCELLED = "cancelled", _("cancelled")


FINAL_STATUSES = (Status.SUCCEEDED, Status.FAILED, Status.TIMED_OUT, Status.CANCELLED)


class InferenceRequest(models.Model):
    """One submission to a space. The table is the durable queue; only relay.queue changes it."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    space = models.ForeignKey(Space, on_delete=models.CASCADE, related_name="requests")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="inference_requests")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    inputs = models.JSONField(default=dict, blank=True)
    # Sends so far: the claim that sends it to an app adds one.
    attempt = models.PositiveSmallIntegerField(default=0)
    # The dispatch lease: which app connection holds the request while it runs.
    connection_id = models.CharField(max_length=64, blank=True, default="")
    deadline = models.DateTimeField(null=True, blank=True)
    # Per-request event sequence number: every change that emits an event raises it.
    seq = models.PositiveIntegerField(default=0)
    progress = models.FloatField(null=True, blank=True)
    message = models.TextField(null=True, blank=True)  # noqa: DJ001 - null and "" differ in the protocol
    text = models.TextField(blank=True, default="")
    outputs = models.JSONField(null=True, blank=True)
    error_code = models.CharField(max_length=32, blank=True, default="")
    error_message = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("request")
        verbose_name_plural = _("requests")
        indexes = [
            models.Index(fields=["space", "status", "created_at"]),
            models.Index(fields=["finished_at"]),  # metrics' recent window, relay_cleanup
        ]
        constraints = [
            # One request in flight per space: a second claim racing on another process fails here.
            models.UniqueConstraint(
                fields=["space"], condition=Q(status="running"), name="relay_one_running_per_space"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.id} ({self.status})"

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def group_name(self) -> str:
        return request_group(self.id)

    @property
    def error(self) -> dict[str, Any] | None:
        if not self.error_code:
            return None
        return {"code": self.error_code, "message": self.error_message}


def request_group(request_id: uuid.UUID | str) -> str:
    return f"request.{request_id}"


def space_group(space_id: int) -> str:
    return f"space.{space_id}"


class AppLease(models.Model):
    """Presence: the one app connection serving a space, alive while renewed."""

    space = models.OneToOneField(Space, on_delete=models.CASCADE, related_name="app_lease")
    connection_id = models.CharField(max_length=64, unique=True)
    channel_name = models.CharField(max_length=200)
    client = models.JSONField(default=dict, blank=True)
    remote_addr = models.CharField(max_length=64, blank=True, default="")
    connected_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    released_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("app connection")
        verbose_name_plural = _("app connections")

    def __str__(self) -> str:
        return f"{self.space.name}: {self.connection_id}"


def stored_file_name(instance: "RequestFile", filename: str) -> str:
    """Never trust an uploaded name as a path: store under the request's id and a fresh uuid."""
    return f"relay/{instance.request_id}/{uuid.uuid4().hex}"


class RequestFile(models.Model):
    """An uploaded input or a result file; served only through the hub's access checks."""

    class Role(models.TextChoices):
        INPUT = "input", _("input")
        OUTPUT = "output", _("output")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    request = models.ForeignKey(InferenceRequest, on_delete=models.CASCADE, related_name="files")
    role = models.CharField(max_length=8, choices=Role.choices)
    field = models.CharField(max_length=16, blank=True, default="")  # audio, video or files (inputs)
    name = models.CharField(max_length=255)
    content_type = models.CharField(max_length=255)
    size = models.PositiveBigIntegerField()
    file = models.FileField(upload_to=stored_file_name, max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "name"]

    def __str__(self) -> str:
        return self.name

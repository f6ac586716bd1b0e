"""Input and result files: stored with Django's storage API, never served without a check.

Apps fetch inputs through signed URLs (`django.core.signing`) that expire and stop
working once the request ends; people fetch results through a view that checks
they are the submitter or staff. Media never travels through the channel layer.
"""

import uuid
from typing import Any

from django.core import signing
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import UploadedFile
from django.urls import reverse

from relay.frames import ResultFile
from relay.models import InferenceRequest, RequestFile

SIGNING_SALT = "relay.files"


def clean_name(name: str) -> str:
    """A display name only: no directories, no control characters."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in base if ch.isprintable()).strip().lstrip(".")
    return base[:255] or "file"


def save_input(req: InferenceRequest, field: str, upload: UploadedFile) -> RequestFile:
    record = RequestFile(
        request=req,
        role=RequestFile.Role.INPUT,
        field=field,
        name=clean_name(upload.name or "file"),
        content_type=upload.content_type or "application/octet-stream",
        size=upload.size or 0,
    )
    record.file.save("upload", upload, save=False)
    record.save()
    return record


def save_outputs(request_id: Any, files: list[ResultFile]) -> list[RequestFile]:
    """Store an app's result files (before the request is marked finished); not yet in the DB."""
    records = []
    for item in files:
        record = RequestFile(
            id=uuid.uuid4(),
            request_id=request_id,
            role=RequestFile.Role.OUTPUT,
            name=clean_name(item.name),
            content_type=item.content_type,
            size=len(item.data),
        )
        record.file.save("result", ContentFile(item.data), save=False)
        records.append(record)
    return records


def discard(records: list[RequestFile]) -> None:
    for record in records:
        record.file.delete(save=False)


def output_entries(records: list[RequestFile]) -> list[dict[str, Any]]:
    return [{"file_id": str(r.id), "name": r.name, "content_type": r.content_type, "size": r.size} for r in records]


def sign_input(record: RequestFile) -> str:
    return signing.dumps({"f": str(record.id), "r": str(record.request_id)}, salt=SIGNING_SALT, compress=True)


def unsign_input(value: str, max_age: int) -> dict[str, str]:
    return signing.loads(value, salt=SIGNING_SALT, max_age=max_age)


def input_entry(record: RequestFile, base_url: str) -> dict[str, Any]:
    path = reverse("relay:input_file", args=[sign_input(record)])
    return {
        "name": record.name,
        "content_type": record.content_type,
        "size": record.size,
        "url": base_url.rstrip("/") + path,
    }


def request_inputs(req: InferenceRequest, base_url: str) -> dict[str, Any]:
    """The `inputs` object of a `request` frame: only the enabled features' inputs."""
    features = req.space.features
    inputs: dict[str, Any] = {}
    if features["prompt"] and "prompt" in req.inputs:
        inputs["prompt"] = req.inputs["prompt"]
    if not (features["audio"] or features["video"] or features["files"]):
        return inputs  # no file inputs: spare the hot path a query
    records = list(req.files.filter(role=RequestFile.Role.INPUT))
    for field in ("audio", "video"):
        match = [r for r in records if r.field == field]
        if features[field] and match:
            inputs[field] = input_entry(match[0], base_url)
    listed = [input_entry(r, base_url) for r in records if r.field == "files"]
    if features["files"] and listed:
        inputs["files"] = listed
    return inputs

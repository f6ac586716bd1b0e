"""Sync helpers for view and queue tests: an app 'connected' by lease alone."""

from typing import Any

from relay import queue
from relay.models import InferenceRequest


def connect_app(space: Any, connection_id: str = "conn-1") -> str:
    queue.acquire_lease(space, connection_id, f"fake.channel.{connection_id}", {}, "127.0.0.1")
    return connection_id


def submit(space: Any, user: Any, prompt: str = "hello") -> InferenceRequest:
    outcome = queue.enqueue(space, user, {"prompt": prompt})
    assert outcome.request is not None
    return outcome.request


def reload(req: InferenceRequest) -> InferenceRequest:
    return InferenceRequest.objects.get(pk=req.pk)

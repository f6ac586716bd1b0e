"""manage.py relay_cleanup --older-than DAYS: files of finished requests go, live ones stay."""

import os
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.core.management import CommandError, call_command
from django.utils import timezone

from relay import queue
from relay.models import InferenceRequest, RequestFile
from tests.relay.helpers import connect_app, submit


def attach(req: InferenceRequest, name: str) -> RequestFile:
    record = RequestFile(request=req, role="input", field="files", name=name, content_type="text/plain", size=3)
    record.file.save("upload", ContentFile(b"abc"), save=False)
    record.save()
    return record


def test_it_deletes_only_files_of_requests_that_ended_long_enough_ago(make_space: Any, alice: Any) -> None:
    space, _ = make_space("Echo")
    connect_app(space)
    old, recent, waiting = submit(space, alice, "old"), submit(space, alice, "recent"), submit(space, alice, "wait")
    for req in (old, recent):
        queue.cancel(req.id)
    InferenceRequest.objects.filter(pk=old.pk).update(finished_at=timezone.now() - timedelta(days=10))
    files = {req.pk: attach(req, f"{req.inputs['prompt']}.txt") for req in (old, recent, waiting)}
    old_path = files[old.pk].file.path

    out = StringIO()
    call_command("relay_cleanup", "--older-than", "7", "--dry-run", stdout=out)
    assert "Would delete 1 file(s)" in out.getvalue()
    assert RequestFile.objects.count() == 3

    out = StringIO()
    call_command("relay_cleanup", "--older-than", "7", stdout=out)
    assert "Deleted 1 file(s), 3 bytes" in out.getvalue()
    assert set(RequestFile.objects.values_list("request_id", flat=True)) == {recent.pk, waiting.pk}
    assert not os.path.exists(old_path)


def test_it_refuses_a_negative_age(db: Any) -> None:
    with pytest.raises(CommandError):
        call_command("relay_cleanup", "--older-than", "-1")

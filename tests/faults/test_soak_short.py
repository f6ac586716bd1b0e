"""The soak (bench/soak.py) in small: a few spaces served by the real mock app, people submitting
across two live daphne processes, then "nothing lost" checked over the database."""

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model

from bench import soak
from tests.faults.peers import wait_connected
from tests.live import ROOT, Daphne, session_cookie

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SPACES, PEOPLE, SECONDS = 4, 20, 15.0


@pytest.fixture
def people(db: Any) -> list[soak.Person]:
    users = [get_user_model().objects.create_user(f"soak-{n:02d}") for n in range(PEOPLE)]
    return [soak.Person(user.pk, session_cookie(user)) for user in users]


@pytest.fixture
def spaces(make_space: Any) -> list[tuple[str, str, str]]:
    made = [make_space(f"Soak {n}") for n in range(SPACES)]
    return [(space.name, space.slug, token) for space, token in made]


@pytest.fixture
def mock_app(hubs: list[Daphne], spaces: list[tuple[str, str, str]], tmp_path: Path) -> Any:
    args = [sys.executable, "-m", "relay.client", "--hub", hubs[0].http, "--delay", "0-0.2"]
    for name, _, token in spaces:
        args += ["--space", name, "--token", token]
    with open(tmp_path / "mock-app.log", "ab") as log:
        proc = subprocess.Popen(
            args, cwd=ROOT, env={**os.environ, "NO_COLOR": "1"}, stdout=log, stderr=subprocess.STDOUT
        )
    yield proc
    proc.kill()
    proc.wait(10)


async def test_nothing_is_lost_under_a_short_soak(
    hubs: list[Daphne], spaces: list[tuple[str, str, str]], people: list[soak.Person], mock_app: Any
) -> None:
    for _, slug, _ in spaces:
        await wait_connected(hubs[0], slug)
    urls = [hub.http for hub in hubs]
    slugs = [slug for _, slug, _ in spaces]
    load = await soak.drive(urls, slugs, people, SECONDS)
    problems = await soak.verify(load, urls, people, replays=20)
    finals = await sync_to_async(soak.stored_states)([s.request_id for s in load.samples if s.status == 201])
    report = soak.summarize(load, problems, {k: v[0] for k, v in finals.items()})
    print(report)
    assert not problems, report
    assert report["accepted"] >= PEOPLE, report  # every person got through at least once (on average)
    assert report["finished"] == {"succeeded": report["accepted"]}, report
    assert not report["refused"], "people who keep to the limits are never refused"
    await asyncio.sleep(0)

"""PostgreSQL restarts during traffic: requests in the middle complete or fail clearly, none is corrupt.

The hub runs on a PostgreSQL of its own (initdb in a temporary folder, as the postgres user, on a
free port; never the machine's 5432). The test database of this process is not the hub's here, so
the test reads the hub's database with psycopg and checks each row with bench.soak.row_problems.
"""

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import psycopg
import pytest
from psycopg.rows import dict_row

from bench.soak import expected_answer, row_problems
from tests import settings as test_settings
from tests.faults.peers import FINAL, MockAppProcess, until, wait_connected
from tests.faults.test_redis_restart import follow_to_the_end
from tests.live import CSRF, ROOT, Daphne, WebUser, free_port, hub_env, running_hubs

PG_BIN = Path("/usr/lib/postgresql/15/bin")
CAN_RUN = os.geteuid() == 0 and shutil.which("runuser") is not None and (PG_BIN / "initdb").exists()

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not CAN_RUN, reason="needs root, runuser and PostgreSQL 15's initdb to run a PostgreSQL"),
]

SETUP = """
import json
from django.contrib.auth import get_user_model
from django.test import Client
from spaces.models import Space
space = Space.objects.create(name="Echo", title="Echo")
token = space.rotate_token()
sessions = []
for n in range(4):
    client = Client()
    client.force_login(get_user_model().objects.create_user(f"user{n}"))
    sessions.append(client.cookies["sessionid"].value)
print(json.dumps({"token": token, "sessions": sessions}))
"""


class Postgres:
    """A throwaway PostgreSQL cluster, run as the postgres user (initdb refuses root)."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="spacehub-pg-"))
        shutil.chown(self.root, "postgres", "postgres")
        self.data, self.log = self.root / "data", self.root / "postgres.log"
        self.port = free_port()

    def url(self, db: str = "hub") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{db}"

    def _as_postgres(self, *args: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *args], check=True, capture_output=True, timeout=120)

    def init(self) -> None:
        self._as_postgres(str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off"
        self._as_postgres(
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-o", options, "start"
        )

    def stop(self, mode: str = "fast") -> None:
        self._as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def remove(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def postgres() -> Iterator[Postgres]:
    if not test_settings.HAVE_REDIS:
        pytest.skip("needs Redis (see README)")
    server = Postgres()
    try:
        server.init()
        server.start()
        with psycopg.connect(server.url("postgres"), autocommit=True) as conn:
            conn.execute("CREATE DATABASE hub")
        env = hub_env(DATABASE_URL=server.url())
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
        yield server
    finally:
        server.remove()


def rows(server: Postgres) -> dict[str, SimpleNamespace]:
    with psycopg.connect(server.url(), row_factory=dict_row) as conn:
        found = conn.execute("SELECT * FROM relay_inferencerequest").fetchall()
    return {str(r["id"]): SimpleNamespace(**r) for r in found}


async def test_requests_survive_a_postgres_restart_complete_or_failed_never_corrupt(
    postgres: Postgres, tmp_path: Path
) -> None:
    env = hub_env(DATABASE_URL=postgres.url())
    setup = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", SETUP],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    data = json.loads(setup.stdout.strip().splitlines()[-1])
    with running_hubs(tmp_path, 2, DATABASE_URL=postgres.url()) as (a, b):
        webs = []
        for session in data["sessions"]:
            web = WebUser(b, None)
            web.cookie = f"csrftoken={CSRF}; sessionid={session}"
            webs.append(web)
        app = MockAppProcess(tmp_path, a, [("Echo", data["token"])], delay="0.5")
        accepted: dict[str, str] = {}
        owners: dict[str, WebUser] = {}
        answers: list[int] = []
        seen: dict[str, str] = {}
        followers: list[asyncio.Task[None]] = []

        async def traffic(seconds: float) -> None:
            end, n = time.monotonic() + seconds, 0
            while time.monotonic() < end:
                web, prompt = webs[n % len(webs)], f"during traffic {n}"
                n += 1
                try:
                    status, body = await asyncio.to_thread(web.submit, "echo", prompt)
                except OSError:
                    status, body = 0, None
                answers.append(status)
                if status == 201:
                    accepted[body["id"]], owners[body["id"]] = prompt, web
                    followers.append(asyncio.create_task(follow_to_the_end(b, web, body["id"], seen, 90)))
                await asyncio.sleep(0.4)

        try:
            await wait_connected(b, "echo")
            load = asyncio.create_task(traffic(7))
            await asyncio.sleep(2.5)
            await asyncio.to_thread(postgres.stop, "fast")
            down = time.monotonic()
            await asyncio.sleep(2)
            await asyncio.to_thread(postgres.start)
            back = time.monotonic()
            await load
            for hub in (a, b):
                await until(lambda hub=hub: _healthy(hub), 15, f"{hub.name} healthy again")

            status, body = await asyncio.to_thread(webs[0].submit, "echo", "after the restart")
            assert status == 201, body
            accepted[body["id"]], owners[body["id"]] = "after the restart", webs[0]
            # A connection that died stops counting within 30 s (PROTOCOL.md); the app retries every few seconds.
            await follow_to_the_end(b, webs[0], body["id"], seen, max(5.0, down + 30 + 8 - time.monotonic()))
            served_after = time.monotonic() - back
            assert seen[body["id"]] in FINAL, f"the space was not served again {time.monotonic() - down:.0f} s later"
            await asyncio.wait_for(asyncio.gather(*followers), 100)
        finally:
            app.kill()
            for task in followers:
                task.cancel()

        stored = await asyncio.to_thread(rows, postgres)
        now = datetime.now(UTC)
        problems = []
        for request_id, prompt in accepted.items():
            row = stored.get(request_id)
            if row is None:
                problems.append(f"{request_id}: accepted, not stored")
                continue
            problems += [f"{request_id}: {p}" for p in row_problems(row, expected_answer(prompt), now)]
            if row.status not in FINAL:
                problems.append(f"{request_id}: still {row.status}")
            if seen.get(request_id) != row.status:
                problems.append(f"{request_id}: the browser saw {seen.get(request_id)}, the database {row.status}")
        prompts = set(accepted.values())
        problems += [f"{k}: stored but refused" for k, r in stored.items() if r.inputs.get("prompt") not in prompts]
        print(
            f"postgres down ~2 s: a new request done {served_after:.1f} s after it came back; answers "
            f"{sorted(set(answers))}; final {sorted({r.status for r in stored.values()})}"
        )
        assert not problems, problems
        unclear = [status for status in answers if status not in (201, 409, 429) and status < 500]
        assert not unclear, f"a submission is accepted, refused by the contract, or fails with a 5xx: {answers}"
        assert a.proc is not None and b.proc is not None and a.proc.poll() is None and b.proc.poll() is None


async def _healthy(hub: Daphne) -> bool:
    status, _ = await asyncio.to_thread(WebUser(hub, None).request, "GET", "/healthz")
    return status == 200

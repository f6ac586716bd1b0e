"""Soak: many people submitting to many spaces for a while, then "nothing lost", checked over the database.

    .venv/bin/python -m bench.soak                                   # 20 spaces, 200 people, 60 s
    .venv/bin/python -m bench.soak --spaces 4 --users 20 --duration 15 --json out.json

The hub runs as the Procfile starts it (N daphne processes, PostgreSQL, Redis, `DEBUG=0`); the
spaces are served by the real mock app (`python -m relay.client`, several `--space`/`--token`
pairs per process, `--delay 0-0.2`). Each simulated person logs in, submits over HTTP
(`Accept: application/json`, CSRF header), follows the request on `/ws/requests/<id>/` to its
final frame, then waits for its next turn. People keep to the hub's limits (30 submissions a
minute, 5 waiting requests; the settings have no environment variable to raise them), so a
person submits at most every `--interval` seconds and has one request out at a time.

Afterwards, for every accepted request (docs/guarantees.md, "Nothing lost"):
- it ended in exactly one final state (succeeded, failed, timed_out, cancelled) or is still queued,
  and none is running past its deadline plus one sweep;
- a succeeded request's result is the one its app sent for it (the mock app echoes each prompt,
  and every prompt is unique);
- no request exists that nobody submitted;
- what the person saw on the stream is what the database holds;
- the submitter reads the same final state over HTTP, and the stream replays it (a sample).

It needs PostgreSQL and Redis on 127.0.0.1 (as `.ci/run` starts them). It creates the database
`spacehub_soak` (dropped first, and afterwards unless `--keep`) and uses Redis database 13 under a
key prefix of its own. It prints a report (and writes it as JSON with `--json`) and exits 1 when
the invariant does not hold. `tests/faults/test_soak_short.py` runs a short version in CI.
"""

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import websockets

ROOT = Path(__file__).resolve().parent.parent
FINAL = frozenset({"succeeded", "failed", "timed_out", "cancelled"})
ERROR_CODES = {"failed": {"app_error", "app_disconnected"}, "timed_out": {"timed_out"}, "cancelled": {"cancelled"}}
MAX_ATTEMPTS = 3
# A running request may outlive its deadline by the sweep's grace (2 s) plus one sweep interval (5 s +
# 20% jitter) before some process times it out.
SWEEP_SLACK = timedelta(seconds=2 + 6)
CSRF = "s" * 32


# --- the invariant, over the database -------------------------------------------------------------


def nothing_lost(expected: Mapping[str, str | None], now: datetime | None = None) -> list[str]:
    """Violations of "nothing lost" for the accepted requests `expected` (id -> the text its app answers,
    None when unknown). Needs Django set up; an empty list means every promise holds."""
    from django.utils import timezone

    from relay.models import InferenceRequest

    now = now or timezone.now()
    rows = {str(r.id): r for r in InferenceRequest.objects.filter(pk__in=list(expected))}
    problems = []
    for request_id, text in expected.items():
        row = rows.get(request_id)
        if row is None:
            problems.append(f"{request_id}: accepted (201) but not in the database")
            continue
        problems += [f"{request_id}: {p}" for p in row_problems(row, text, now)]
    return problems


def row_problems(row: Any, text: str | None, now: datetime) -> list[str]:
    """What is wrong with one request row (an InferenceRequest, or anything with its fields)."""
    status = row.status
    if status == "running":
        if row.deadline is None or row.deadline + SWEEP_SLACK < now:
            return [f"still running {now - (row.deadline or now)} after its deadline"]
        return []
    if status == "queued":
        return [] if row.finished_at is None and row.outputs is None else ["queued with an end or outputs"]
    if status not in FINAL:
        return [f"unknown status {status!r}"]
    problems = []
    if row.finished_at is None or row.finished_at < row.created_at:
        problems.append("final without a sensible finished_at")
    if not 0 <= row.attempt <= MAX_ATTEMPTS:
        problems.append(f"sent {row.attempt} times (at most {MAX_ATTEMPTS})")
    if status == "succeeded":
        if row.error_code:
            problems.append(f"succeeded with error {row.error_code}")
        outputs = row.outputs or {}
        if text is not None and (outputs.get("text") != text or row.text != text):
            problems.append(f"result {outputs.get('text')!r} is not its app's answer {text!r}")
        if row.attempt < 1:
            problems.append("succeeded without being sent to an app")
    else:
        if row.error_code not in ERROR_CODES[status]:
            problems.append(f"{status} with error code {row.error_code!r}")
        if row.outputs is not None:
            problems.append(f"{status} but has outputs")
    return problems


def phantoms(user_ids: Sequence[int], expected: Mapping[str, Any]) -> list[str]:
    """Requests of these users that nobody's submission accounts for."""
    from relay.models import InferenceRequest

    found = InferenceRequest.objects.filter(user_id__in=list(user_ids)).values_list("id", flat=True)
    return [f"{pk}: in the database but never accepted" for pk in found if str(pk) not in expected]


def stored_states(ids: Sequence[str]) -> dict[str, tuple[str, str]]:
    from relay.models import InferenceRequest

    return {
        str(pk): (status, text)
        for pk, status, text in InferenceRequest.objects.filter(pk__in=list(ids)).values_list("id", "status", "text")
    }


# --- a small HTTP client (stdlib only: the product's requirements have none) -----------------------


async def http(
    method: str, url: str, headers: Mapping[str, str] | None = None, body: bytes = b"", timeout: float = 30
) -> tuple[int, Any]:
    """One HTTP/1.1 exchange on a fresh connection; the status and the JSON body (or text)."""
    parts = urllib.parse.urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = [f"{method} {target} HTTP/1.1", f"Host: {parts.netloc}", "Connection: close"]
    lines += [f"Content-Length: {len(body)}"] if body or method == "POST" else []
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    reader, writer = await asyncio.wait_for(asyncio.open_connection(parts.hostname, parts.port), timeout)
    try:
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()
    head, _, payload = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    if b"transfer-encoding: chunked" in head.lower():
        payload = _dechunk(payload)
    try:
        return status, json.loads(payload or b"null")
    except ValueError:
        return status, payload.decode(errors="replace")


def _dechunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out, data = out + data[:size], data[size + 2 :]
    return out


# --- the people ---------------------------------------------------------------------------------


@dataclass
class Person:
    user_id: int
    cookie: str  # the session cookie ("sessionid=...")


@dataclass
class Sample:
    """One submission and what its person saw."""

    user_id: int
    slug: str
    prompt: str
    status: int  # the HTTP status of the submission
    code: str = ""  # the refusal's error code
    request_id: str = ""
    submitted: float = 0.0  # time.monotonic()
    ended: float | None = None  # when the final frame arrived
    final: str = ""  # the final status the stream said
    text: str = ""  # the text the stream built
    retries: int = 0  # stream connections refused or dropped before the final frame
    last_retry: str = ""
    problem: str = ""  # a broken promise seen on the way (a stream that ended without a final frame ...)


@dataclass
class Load:
    samples: list[Sample] = field(default_factory=list)
    started: float = 0.0
    stopped: float = 0.0


def expected_answer(prompt: str) -> str:
    """What the mock app answers: relay.client.mock echoes the prompt."""
    from relay.client.mock import answer

    return answer(prompt, [])


def _headers(person: Person, **extra: str) -> dict[str, str]:
    return {"Cookie": f"csrftoken={CSRF}; {person.cookie}", "X-CSRFToken": CSRF, "Accept": "application/json", **extra}


async def follow(hub: str, person: Person, request_id: str, sample: Sample, timeout: float) -> None:
    """Follow /ws/requests/<id>/ to its final frame, rebuilding the text as a browser does; a browser
    whose socket is refused or dropped opens it again (space.js does), and the snapshot catches it up."""
    url = hub.replace("http", "ws", 1) + f"/ws/requests/{request_id}/"
    headers = {"Cookie": person.cookie, "Origin": hub}
    try:
        async with asyncio.timeout(timeout):
            while not sample.final:
                try:
                    await _follow_once(url, headers, sample)
                except (OSError, websockets.WebSocketException) as exc:
                    sample.retries += 1
                    sample.last_retry = repr(exc)
                    await asyncio.sleep(0.5)
    except TimeoutError:
        sample.problem = f"no final frame within {timeout} s ({sample.retries} reconnections, {sample.last_retry})"


async def _follow_once(url: str, headers: dict[str, str], sample: Sample) -> None:
    async with websockets.connect(url, additional_headers=headers) as ws:
        async for message in ws:
            frame = json.loads(message)
            kind = frame["type"]
            if kind == "state":
                sample.text, status = frame["request"]["text"], frame["request"]["status"]
                if status in FINAL:
                    sample.final = status
            elif kind == "status" and frame["status"] == "running":
                sample.text = ""
            elif kind == "partial":
                sample.text += frame["text"]
            elif kind == "result":
                sample.final = "succeeded"
                sample.text = frame["outputs"].get("text", sample.text)
            elif kind == "error":
                code = frame["error"]["code"]
                sample.final = "failed" if code in ("app_error", "app_disconnected") else code
            if sample.final:
                sample.ended = time.monotonic()
                if await _close_code(ws) != 1000:
                    sample.problem = f"the stream closed with {ws.close_code}, not 1000"
                return
    raise websockets.ConnectionClosedError(None, None)  # ended before a final frame: open it again


async def _close_code(ws: Any) -> int | None:
    with contextlib.suppress(websockets.ConnectionClosed):
        await asyncio.wait_for(ws.recv(), 5)
    return ws.close_code


async def person_loop(
    person: Person,
    hubs: Sequence[str],
    slugs: Sequence[str],
    end: float,
    interval: float,
    rng: random.Random,
    load: Load,
) -> None:
    await asyncio.sleep(rng.uniform(0, interval))  # spread the first submissions
    n = 0
    while time.monotonic() < end:
        n += 1
        began = time.monotonic()
        hub, slug = rng.choice(hubs), rng.choice(slugs)
        prompt = f"soak u{person.user_id} n{n} {uuid.uuid4().hex[:10]}"
        body = urllib.parse.urlencode({"prompt": prompt}).encode()
        headers = _headers(person, **{"Content-Type": "application/x-www-form-urlencoded"})
        sample = Sample(person.user_id, slug, prompt, 0, submitted=began)
        load.samples.append(sample)
        try:
            sample.status, answer = await http("POST", f"{hub}/spaces/{slug}/requests/", headers, body)
        except (OSError, TimeoutError) as exc:
            sample.problem = f"the submission failed: {exc!r}"
            await asyncio.sleep(1)
            continue
        if sample.status == 201:
            sample.request_id = answer["id"]
            await follow(rng.choice(hubs), person, sample.request_id, sample, timeout=120)
        else:
            sample.code = answer["error"]["code"] if isinstance(answer, dict) and "error" in answer else "?"
        wait = interval * rng.uniform(1.0, 1.2) if sample.status in (201, 429) else 1.0
        await asyncio.sleep(max(0.0, began + wait - time.monotonic()))


async def drive(
    hubs: Sequence[str],
    slugs: Sequence[str],
    people: Sequence[Person],
    duration: float,
    interval: float = 2.1,
    seed: int = 0,
) -> Load:
    """Run the people for `duration` seconds (each finishes the request it has out)."""
    load = Load(started=time.monotonic())
    end = load.started + duration
    rng = random.Random(seed)
    await asyncio.gather(
        *(person_loop(p, hubs, slugs, end, interval, random.Random(rng.random()), load) for p in people)
    )
    load.stopped = time.monotonic()
    return load


# --- checking and reporting -----------------------------------------------------------------------


async def verify(
    load: Load, hubs: Sequence[str], people: Sequence[Person], replays: int = 50, seed: int = 0
) -> list[str]:
    """Every check of the module docstring; the violations."""
    from asgiref.sync import sync_to_async

    accepted = [s for s in load.samples if s.status == 201]
    expected = {s.request_id: expected_answer(s.prompt) for s in accepted}
    problems = [f"{s.request_id or s.prompt}: {s.problem}" for s in load.samples if s.problem]
    problems += await sync_to_async(nothing_lost)(expected)
    problems += await sync_to_async(phantoms)([p.user_id for p in people], expected)
    stored = await sync_to_async(stored_states)(list(expected))
    for s in accepted:
        status, text = stored.get(s.request_id, ("missing", ""))
        if s.final and (s.final, s.text if s.final == "succeeded" else "") != (
            status,
            text if status == "succeeded" else "",
        ):
            problems.append(f"{s.request_id}: the stream said {s.final} {s.text!r}, the database {status} {text!r}")
    by_user = {p.user_id: p for p in people}
    rng = random.Random(seed)
    semaphore = asyncio.Semaphore(20)

    async def over_http(s: Sample) -> None:
        async with semaphore:
            code, body = await http(
                "GET", f"{rng.choice(hubs)}/api/requests/{s.request_id}/", _headers(by_user[s.user_id])
            )
        if code != 200 or (body["status"], body["text"]) != stored.get(s.request_id):
            problems.append(f"{s.request_id}: HTTP says {code} {body!r}, the database {stored.get(s.request_id)}")

    async def replayed(s: Sample) -> None:
        async with semaphore:
            again = Sample(s.user_id, s.slug, s.prompt, 201, request_id=s.request_id)
            await follow(rng.choice(hubs), by_user[s.user_id], s.request_id, again, timeout=15)
        if again.problem or (again.final, again.text) != stored.get(s.request_id):
            problems.append(f"{s.request_id}: the replay said {again.final} {again.text!r} {again.problem}")

    await asyncio.gather(*(over_http(s) for s in accepted))
    finished = [s for s in accepted if stored.get(s.request_id, ("",))[0] in FINAL]
    await asyncio.gather(*(replayed(s) for s in rng.sample(finished, min(replays, len(finished)))))
    return problems


def percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def summarize(load: Load, problems: list[str], stored_finals: Mapping[str, str] | None = None) -> dict[str, Any]:
    samples = load.samples
    accepted = [s for s in samples if s.status == 201]
    latencies = [s.ended - s.submitted for s in accepted if s.ended is not None]
    seconds = max(load.stopped - load.started, 1e-9)
    return {
        "duration_s": round(seconds, 1),
        "submitted": len(samples),
        "accepted": len(accepted),
        "refused": dict(Counter(f"{s.status} {s.code}" for s in samples if s.status not in (0, 201))),
        "finished": dict(Counter(s.final or "(none)" for s in accepted)),
        "in_database": dict(Counter(stored_finals.values())) if stored_finals else None,
        "done_per_s": round(sum(1 for s in accepted if s.final) / seconds, 1),
        "stream_reconnections": sum(s.retries for s in accepted),
        "stream_reconnection_causes": dict(Counter(s.last_retry.split("(")[0] for s in accepted if s.retries)),
        "latency_s": {
            q: (round(v, 3) if (v := percentile(latencies, float(q[1:]))) is not None else None)
            for q in ("p50", "p90", "p99", "p100")
        },
        "violations": len(problems),
        "first_violations": problems[:20],
        "nothing_lost": not problems,
    }


# --- the command: provision, run, check -----------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    try:
        yield started
    finally:
        for proc in started:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in started:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited with {proc.returncode}")
        try:
            status, _ = asyncio.run(http("GET", f"{url}/healthz", timeout=2))
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not become healthy in {timeout} s")


def _environment(args: argparse.Namespace, workdir: Path) -> dict[str, str]:
    prefix = f"spacehub-soak-{os.getpid()}"
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "spacehub.settings",
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(40),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DATABASE_URL": args.database_url,
        "REDIS_URL": args.redis_url,
        "CHANNEL_LAYER_PREFIX": prefix,
        "CACHE_KEY_PREFIX": prefix,
        "MEDIA_ROOT": str(workdir / "media"),
        "STATIC_ROOT": str(workdir / "static"),
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }


def _recreate_database(url: str, drop_only: bool = False) -> None:
    import psycopg

    parts = urllib.parse.urlsplit(url)
    name = parts.path.lstrip("/")
    admin = urllib.parse.urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not drop_only:
            conn.execute(f'CREATE DATABASE "{name}"')


def _provision(spaces: int, users: int) -> tuple[list[tuple[str, str, str]], list[Person]]:
    """Create the spaces (name, slug, token) and the people with a logged-in session each."""
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.test import Client

    from spaces.models import Space

    made = []
    for n in range(spaces):
        space = Space.objects.create(name=f"Soak {n:02d}", title=f"Soak {n:02d}")
        made.append((space.name, space.slug, space.rotate_token()))
    people = []
    for n in range(users):
        user = get_user_model().objects.create_user(f"soak-{n:03d}")
        client = Client()
        client.force_login(user)
        people.append(
            Person(user.pk, f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}")
        )
    return made, people


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    p.add_argument("--spaces", type=int, default=20)
    p.add_argument("--users", type=int, default=200)
    p.add_argument("--duration", type=float, default=60.0, help="seconds of load (default 60)")
    p.add_argument("--hubs", type=int, default=2, help="daphne processes (default 2)")
    p.add_argument("--spaces-per-app", type=int, default=10, help="spaces one mock app process serves (10)")
    p.add_argument("--delay", default="0-0.2", help="the mock app's seconds per request (0-0.2)")
    p.add_argument("--interval", type=float, default=2.1, help="seconds between one person's submissions (2.1)")
    p.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/spacehub_soak")
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/13")
    p.add_argument("--json", type=Path, help="also write the report here")
    p.add_argument("--keep", action="store_true", help="keep the database and the logs afterwards")
    args = p.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="spacehub-soak-"))
    env = _environment(args, workdir)
    os.environ.update(env)
    _recreate_database(args.database_url)
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", "--noinput", verbosity=0)
    call_command("collectstatic", "--noinput", verbosity=0)
    made, people = _provision(args.spaces, args.users)
    from django.db import connections

    connections.close_all()

    with _processes() as procs:
        hubs = []
        for n in range(args.hubs):
            port = _free_port()
            log = open(workdir / f"daphne{n}.log", "ab")  # noqa: SIM115 - handed to the child process
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        *("-m", "spacehub.serve"),
                        *("-b", "127.0.0.1", "-p", str(port)),
                        *("--ping-interval", "20", "--ping-timeout", "30", "--websocket_timeout", "-1"),
                        "spacehub.asgi:application",
                    ],
                    cwd=ROOT,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
            hubs.append(f"http://127.0.0.1:{port}")
        for url, proc in zip(hubs, procs, strict=True):
            _wait_healthy(url, proc)
        for n in range(0, len(made), args.spaces_per_app):
            pairs = [
                a for name, _, token in made[n : n + args.spaces_per_app] for a in ("--space", name, "--token", token)
            ]
            log = open(workdir / f"mock-app{n}.log", "ab")  # noqa: SIM115 - handed to the child process
            hub = hubs[(n // args.spaces_per_app) % len(hubs)]
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "relay.client", "--hub", hub, "--delay", args.delay, *pairs],
                    cwd=ROOT,
                    env={**env, "NO_COLOR": "1"},
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        slugs = [slug for _, slug, _ in made]
        asyncio.run(_wait_connected(hubs[0], slugs))
        print(
            f"soak: {args.users} people, {args.spaces} spaces, {args.hubs} hubs, {args.duration:.0f} s ...", flush=True
        )
        load = asyncio.run(drive(hubs, slugs, people, args.duration, args.interval))
        problems = asyncio.run(verify(load, hubs, people))

    finals = {k: v[0] for k, v in stored_states([s.request_id for s in load.samples if s.status == 201]).items()}
    report = {"spaces": args.spaces, "users": args.users, "hubs": args.hubs, **summarize(load, problems, finals)}
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps({**report, "samples": [asdict(s) for s in load.samples]}, indent=1))
    connections.close_all()
    if args.keep:
        print(f"kept: {args.database_url}, logs in {workdir}")
    else:
        _recreate_database(args.database_url, drop_only=True)
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if not problems else 1


async def _wait_connected(hub: str, slugs: Sequence[str], timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    for slug in slugs:
        while True:
            status, body = await http("GET", f"{hub}/api/spaces/{slug}/")
            if status == 200 and body["connected"]:
                break
            if time.monotonic() > end:
                raise RuntimeError(f"the mock app did not connect {slug} within {timeout} s")
            await asyncio.sleep(0.2)


if __name__ == "__main__":
    sys.exit(main())

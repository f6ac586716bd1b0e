"""Real hub processes for end-to-end tests, sharing the test database and Redis.

They run as production does, through `python -m spacehub.serve` (daphne with the 1009 close and the body
cap); `Daphne(..., bare=True)` runs plain `daphne` instead, which must keep serving the hub too.
"""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent
DAPHNE = str(Path(sys.executable).parent / "daphne")
SERVE = (sys.executable, "-m", "spacehub.serve")  # the Procfile's and the systemd unit's entry point


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def database_url() -> str:
    db = settings.DATABASES["default"]
    if db["ENGINE"] != "django.db.backends.postgresql":
        raise RuntimeError("live daphne processes need PostgreSQL")
    user = db.get("USER") or "postgres"
    return f"postgres://{user}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


def hub_env(**extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "spacehub.settings",
        "DEBUG": "0",
        "SECRET_KEY": settings.SECRET_KEY,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DATABASE_URL": database_url(),
        "REDIS_URL": os.environ.get("REDIS_URL", ""),
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "STATIC_ROOT": str(settings.STATIC_ROOT),
        "PYTHONUNBUFFERED": "1",
    }
    env.update(extra)
    return env


_collected = False


def collectstatic() -> None:
    global _collected
    if not _collected:
        subprocess.run(
            [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"], cwd=ROOT, env=hub_env(), check=True
        )
        _collected = True


class Daphne:
    """One hub process on a free loopback port: `python -m spacehub.serve`, or plain daphne if `bare`."""

    def __init__(
        self,
        log_dir: Path,
        name: str,
        extra_env: dict[str, str] | None = None,
        extra_args: tuple[str, ...] = (),
        bare: bool = False,
    ) -> None:
        self.port = free_port()
        self.command = (DAPHNE,) if bare else SERVE
        self.extra_args = extra_args
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self.extra_env = extra_env or {}
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> "Daphne":
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child process
        self.proc = subprocess.Popen(
            [
                *self.command,
                "-b",
                "127.0.0.1",
                "-p",
                str(self.port),
                "--ping-interval",
                "5",
                "--ping-timeout",
                "10",
                "--websocket_timeout",
                "-1",
                *self.extra_args,
                "spacehub.asgi:application",
            ],
            cwd=ROOT,
            env=hub_env(**self.extra_env),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 20.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"daphne {self.name} exited: {self.log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.http}/healthz", timeout=1) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"daphne {self.name} did not answer in {timeout}s: {self.log_path.read_text()[-3000:]}")

    def kill(self) -> None:
        """kill -9: no goodbye to anyone."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def running_hubs(
    log_dir: Path, count: int = 1, daphne_args: tuple[str, ...] = (), **extra_env: str
) -> Iterator[list[Daphne]]:
    collectstatic()
    hubs = [Daphne(log_dir, f"daphne{i}", extra_env, daphne_args) for i in range(count)]
    try:
        for hub in hubs:
            hub.start()
        yield hubs
    finally:
        for hub in hubs:
            hub.stop()


def session_cookie(user: Any) -> str:
    """A logged-in session for `user`, as a Cookie header value usable against live daphne."""
    from django.test import Client

    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


CSRF = "a" * 32  # any 32 alphanumerics: the cookie and the header must agree


class WebUser:
    """A logged-in person talking HTTP to a live hub (as a browser's fetch would)."""

    def __init__(self, hub: Daphne, user: Any | None) -> None:
        self.hub = hub
        self.cookie = f"csrftoken={CSRF}" + (f"; {session_cookie(user)}" if user is not None else "")

    def headers(self, **extra: str) -> dict[str, str]:
        return {"Cookie": self.cookie, "X-CSRFToken": CSRF, "Accept": "application/json", **extra}

    def request(self, method: str, path: str, data: bytes | None = None, **headers: str) -> tuple[int, Any]:
        import json
        import urllib.error

        req = urllib.request.Request(self.hub.http + path, data=data, method=method, headers=self.headers(**headers))
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as err:
            body = err.read()
            try:
                return err.code, json.loads(body)
            except ValueError:
                return err.code, body.decode(errors="replace")

    def submit(self, slug: str, prompt: str = "hello") -> tuple[int, Any]:
        from urllib.parse import urlencode

        return self.request(
            "POST",
            f"/spaces/{slug}/requests/",
            urlencode({"prompt": prompt}).encode(),
            **{"Content-Type": "application/x-www-form-urlencoded"},
        )

    def ws_headers(self) -> dict[str, str]:
        return {"Cookie": self.cookie, "Origin": self.hub.http}

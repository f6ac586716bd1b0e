"""The hub under test: its database, its daphne processes, its users' logged-in sessions."""

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil

from bench.procs import spawn

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PG = "postgres://postgres@127.0.0.1:5432"
REDIS_URL = "redis://127.0.0.1:6379/14"
PASSWORD = "bench-password-1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def hub_env(database_url: str, scratch: Path, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "spacehub.settings",
        "DATABASE_URL": database_url,
        "REDIS_URL": REDIS_URL,
        "CHANNEL_LAYER_PREFIX": "bench",
        "SECRET_KEY": "bench-secret-key-not-for-production-" + "x" * 20,
        "DEBUG": "0",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "STATIC_ROOT": str(scratch / "static"),
        "MEDIA_ROOT": str(scratch / "media"),
        "LOG_LEVEL": "WARNING",  # one logfmt line per lifecycle event would be measured too
        "PYTHONUNBUFFERED": "1",
    }
    env.update(extra)
    return env


def recreate_postgres(name: str) -> str:
    """Drop and create the bench's own database; return its URL."""
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{PG}/{name}"


def flush_redis() -> None:
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def prepare(env: dict[str, str], spaces: int, users: int) -> dict[str, Any]:
    """migrate, collectstatic, then the spaces (through `setup_space --json`) and the users."""
    manage(env, "migrate", "--noinput", "-v0")
    manage(env, "collectstatic", "--noinput", "-v0")
    out = subprocess.run(
        [sys.executable, "-m", "bench.provision", str(spaces), str(users), PASSWORD],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"provisioning failed:\n{out.stdout}\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


class Daphne:
    """One hub process on a free loopback port, started like the Procfile's `web` line (python -m spacehub.serve)."""

    def __init__(self, env: dict[str, str], log_path: Path, settings: str = "bench.settings_bench") -> None:
        self.port = free_port()
        self.env = {**env, "DJANGO_SETTINGS_MODULE": settings}
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def process(self) -> psutil.Process:
        return psutil.Process(self.pid)

    def start(self) -> "Daphne":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = spawn(
                [
                    str(BIN / "python"),
                    "-m",
                    "spacehub.serve",
                    "-b",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "--ping-interval",
                    "20",
                    "--ping-timeout",
                    "30",
                    "--websocket_timeout",
                    "-1",
                    "--websocket-max-message-size",
                    "1048576",
                    "spacehub.asgi:application",
                ],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        end = time.monotonic() + 30
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daphne exited: {self.log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.http}/healthz", timeout=2) as resp:
                    if resp.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"daphne did not answer: {self.log_path.read_text()[-3000:]}")

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


async def login(base: str, username: str, password: str = PASSWORD) -> dict[str, str]:
    """Log in as a browser does: the login page for the CSRF cookie, then the form post."""
    import aiohttp

    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        async with session.get(f"{base}/accounts/login/") as resp:
            page = await resp.text()
        match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        if match is None:
            raise RuntimeError("no CSRF token on the login page")
        form = {"username": username, "password": password, "csrfmiddlewaretoken": match[1]}
        async with session.post(f"{base}/accounts/login/", data=form, allow_redirects=False) as resp:
            if resp.status != 302:
                raise RuntimeError(f"login of {username} answered {resp.status}")
        cookies = {c.key: c.value for c in session.cookie_jar}
    return {
        "cookie": f"csrftoken={cookies['csrftoken']}; sessionid={cookies['sessionid']}",
        "csrf": cookies["csrftoken"],
    }


def login_all(base: str, usernames: list[str]) -> list[dict[str, str]]:
    async def run() -> list[dict[str, str]]:
        gate = asyncio.Semaphore(4)

        async def one(name: str) -> dict[str, str]:
            async with gate:
                return await login(base, name)

        return list(await asyncio.gather(*(one(n) for n in usernames)))

    return asyncio.run(run())

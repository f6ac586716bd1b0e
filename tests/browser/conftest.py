"""Debian's Chromium driven by Playwright, against live daphne with the mock app."""

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.live import ROOT, Daphne

CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(os.environ.get("SPACEHUB_SHOTS", "/tmp/spacehub-shots"))
PASSWORD = "alice-password"

# Playwright's sync API keeps an event loop running in the test thread, which makes Django refuse
# database calls there; the calls are in fact synchronous (Django's documented escape hatch).
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Per module: Playwright's sync API keeps an event loop running in the main thread while it lives,
    which async tests elsewhere cannot share (the browser tests also run last, see tests/conftest.py)."""
    if not Path(CHROMIUM).exists():
        pytest.skip("needs Debian's Chromium at /usr/bin/chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield chromium
        chromium.close()


class PageProbe:
    """A browser tab that records console errors, CSP violations and dialogs."""

    def __init__(self, page: Any, hub: Daphne, name: str) -> None:
        self.page = page
        self.hub = hub
        self.name = name
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        page.on("console", lambda msg: self.errors.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        page.on("dialog", lambda dialog: (self.dialogs.append(dialog.message), dialog.dismiss()))

    def goto(self, path: str) -> None:
        self.page.goto(self.hub.http + path)

    def login(self, username: str = "alice", password: str = PASSWORD) -> None:
        self.goto("/accounts/login/?next=/")
        self.page.fill("input[name=username]", username)
        self.page.fill("input[name=password]", password)
        self.page.click("form[action='/accounts/login/'] button[type=submit]")
        try:
            self.page.wait_for_url(self.hub.http + "/")
        except Exception:
            self.shot("login-failed")
            raise

    def shot(self, label: str) -> Path:
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / f"{self.name}-{label}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def tab(browser: Any, hub: Daphne, request: pytest.FixtureRequest) -> Iterator[PageProbe]:
    language = getattr(request, "param", "en")
    context = browser.new_context(
        locale="zh-CN" if language == "zh-hans" else "en-US", viewport={"width": 1200, "height": 900}
    )
    page = context.new_page()
    page.set_default_timeout(15_000)
    probe = PageProbe(page, hub, f"{request.node.name}")
    yield probe
    context.close()
    assert not [e for e in probe.errors if "Content Security Policy" in e], probe.errors


class MockApp:
    """`python -m relay.client` as its own process, like a model owner runs it."""

    def __init__(self, hub: Daphne, space: str, token: str, delay: str = "0.5", log_dir: Path | None = None) -> None:
        self.args = [sys.executable, "-m", "relay.client", "--hub", hub.http, "--space", space, "--token", token]
        self.args += ["--delay", delay, "--grace", "1"]
        self.log = (log_dir or Path("/tmp")) / f"mock-{space}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> "MockApp":
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(self.args, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture
def mock_apps(tmp_path: Path) -> Iterator[list[MockApp]]:
    started: list[MockApp] = []
    yield started
    for app in started:
        app.stop()

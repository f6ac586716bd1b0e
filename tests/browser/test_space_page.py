"""The space page in Debian's Chromium: live status, streaming, files, safety, cancel, reload."""

import subprocess
import sys
import time
from typing import Any

import pytest

from tests.browser.conftest import PASSWORD, MockApp, PageProbe
from tests.live import ROOT, Daphne

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.hubs(1)]

SUBMIT = "#submit-button"
CARD = ".request-card[data-request-id]"


def submit_prompt(tab: PageProbe, prompt: str) -> None:
    tab.page.fill("#id_prompt", prompt)
    tab.page.click(SUBMIT)
    tab.page.wait_for_selector(CARD)


def wait_status(tab: PageProbe, status: str, timeout: float = 20_000) -> Any:
    return tab.page.wait_for_selector(f'{CARD}[data-status="{status}"]', timeout=timeout)


def wait_connected(tab: PageProbe, value: bool) -> None:
    tab.page.wait_for_selector(f'#app-status[data-connected="{str(value).lower()}"]', timeout=20_000)


@pytest.fixture
def echo(make_space: Any, alice: Any) -> tuple[Any, str]:
    from django.contrib.auth.hashers import make_password

    alice.password = make_password(PASSWORD, hasher="pbkdf2_sha256")  # a hasher the live hub knows
    alice.save()
    return make_space("Echo", feature_audio=True)


@pytest.mark.parametrize("tab", ["en", "zh-hans"], indirect=True)
def test_it_follows_a_prompt_from_submit_to_streamed_result(
    tab: PageProbe, hub: Daphne, echo: Any, mock_apps: list[MockApp], tmp_path: Any
) -> None:
    _, token = echo
    tab.login()
    tab.goto("/spaces/echo/")
    wait_connected(tab, False)
    assert tab.page.is_disabled(SUBMIT), "no app: the button is off"
    assert tab.page.is_visible("#not-connected-reason")
    tab.shot("1-no-app")

    mock_apps.append(MockApp(hub, "Echo", token, delay="4", log_dir=tmp_path).start())
    wait_connected(tab, True)
    assert tab.page.is_enabled(SUBMIT)
    assert not tab.page.is_visible("#not-connected-reason")
    tab.shot("2-connected")

    submit_prompt(tab, "a poem about Python")
    wait_status(tab, "running")
    tab.page.wait_for_selector(f"{CARD} .progress:not([hidden])")
    tab.shot("3-running")
    lengths = set()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        text = tab.page.text_content(f"{CARD} .result-text") or ""
        lengths.add(len(text))
        if tab.page.query_selector(f'{CARD}[data-status="succeeded"]'):
            break
        if len(lengths) == 3:
            tab.shot("4-streaming")
        time.sleep(0.05)
    wait_status(tab, "succeeded")
    final = tab.page.text_content(f"{CARD} .result-text")
    assert final == 'You said: "a poem about Python".'
    assert len([n for n in lengths if 0 < n < len(final)]) >= 2, f"the text grew in steps: {sorted(lengths)}"
    tab.shot("5-done")

    tab.page.reload()
    wait_status(tab, "succeeded")
    assert tab.page.text_content(f"{CARD} .result-text") == final, "a reload shows the previous request"
    tab.shot("6-reloaded")
    assert not tab.dialogs


def test_it_uploads_audio_that_the_app_receives(
    tab: PageProbe, hub: Daphne, echo: Any, mock_apps: list[MockApp], tmp_path: Any
) -> None:
    _, token = echo
    mock_apps.append(MockApp(hub, "Echo", token, delay="0.2", log_dir=tmp_path).start())
    tab.login()
    tab.goto("/spaces/echo/")
    wait_connected(tab, True)
    audio = b"RIFF" + bytes(2000)
    tab.page.set_input_files("#id_audio", {"name": "voice.wav", "mimeType": "audio/wav", "buffer": audio})
    tab.page.click(SUBMIT)
    wait_status(tab, "succeeded")
    text = tab.page.text_content(f"{CARD} .result-text") or ""
    assert f"audio voice.wav (audio/wav, {len(audio)} bytes received)" in text
    tab.shot("audio-done")


def test_it_shows_an_image_result_inline(tab: PageProbe, hub: Daphne, echo: Any, tmp_path: Any) -> None:
    _, token = echo
    log = open(tmp_path / "image-app.log", "wb")  # noqa: SIM115 - the child's output
    app = subprocess.Popen(
        [sys.executable, "-m", "tests.browser.image_app", hub.http, "Echo", token], cwd=ROOT, stdout=log, stderr=log
    )
    try:
        tab.login()
        tab.goto("/spaces/echo/")
        wait_connected(tab, True)
        submit_prompt(tab, "draw me something")
        wait_status(tab, "succeeded")
        img = tab.page.wait_for_selector(f"{CARD} .result-files img")
        tab.page.wait_for_function("(node) => node.complete", arg=img)
        assert img.evaluate("(node) => node.naturalWidth") == 40, "the picture loaded and decoded"
        assert tab.page.get_attribute(f"{CARD} .result-files a", "download") == "picture.png"
        tab.shot("image")
    finally:
        app.terminate()
        app.wait(10)
        log.close()


def test_it_shows_hostile_output_as_text(
    tab: PageProbe, hub: Daphne, echo: Any, mock_apps: list[MockApp], tmp_path: Any
) -> None:
    _, token = echo
    mock_apps.append(MockApp(hub, "Echo", token, delay="0.2", log_dir=tmp_path).start())
    tab.login()
    tab.goto("/spaces/echo/")
    wait_connected(tab, True)
    payload = "<img src=x onerror=alert(1)>"
    submit_prompt(tab, payload)
    wait_status(tab, "succeeded")
    assert payload in (tab.page.text_content(f"{CARD} .result-text") or "")
    assert tab.page.query_selector('img[src="x"]') is None
    tab.page.reload()
    wait_status(tab, "succeeded")
    assert tab.page.query_selector('img[src="x"]') is None
    assert tab.dialogs == [], "no script from the app's output ran"
    tab.shot("xss")


def test_it_cancels_a_running_request(
    tab: PageProbe, hub: Daphne, echo: Any, mock_apps: list[MockApp], tmp_path: Any
) -> None:
    _, token = echo
    mock_apps.append(MockApp(hub, "Echo", token, delay="30", log_dir=tmp_path).start())
    tab.login()
    tab.goto("/spaces/echo/")
    wait_connected(tab, True)
    submit_prompt(tab, "take your time")
    wait_status(tab, "running")
    tab.page.click(f"{CARD} .cancel-button")
    wait_status(tab, "cancelled")
    assert tab.page.is_visible(f"{CARD} .request-error")
    assert not tab.page.is_visible(f"{CARD} .cancel-button")
    tab.shot("cancelled")


def test_it_explains_a_missing_app(tab: PageProbe, hub: Daphne, echo: Any) -> None:
    tab.login()
    tab.goto("/spaces/echo/")
    wait_connected(tab, False)
    reason = tab.page.text_content("#not-connected-reason") or ""
    assert "No app is connected" in reason
    assert tab.page.is_disabled(SUBMIT)

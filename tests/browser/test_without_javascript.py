"""The space page with JavaScript off: the form still posts (303 back) and the page shows the state."""

from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.conftest import PASSWORD, MockApp, PageProbe
from tests.live import Daphne

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.hubs(1)]


@pytest.fixture
def plain_tab(browser: Any, hub: Daphne) -> Iterator[PageProbe]:
    context = browser.new_context(java_script_enabled=False, viewport={"width": 1200, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield PageProbe(page, hub, "no-js")
    context.close()


def test_it_submits_and_shows_the_result_without_javascript(
    plain_tab: PageProbe, hub: Daphne, make_space: Any, alice: Any, mock_apps: list[MockApp], tmp_path: Any
) -> None:
    from django.contrib.auth.hashers import make_password

    alice.password = make_password(PASSWORD, hasher="pbkdf2_sha256")
    alice.save()
    _, token = make_space("Echo")
    mock_apps.append(MockApp(hub, "Echo", token, delay="0.2", log_dir=tmp_path).start())
    tab = plain_tab
    tab.login()
    tab.goto("/spaces/echo/")
    for _ in range(40):  # the mock app is starting: the server-rendered badge says when it is in
        if tab.page.get_attribute("#app-status", "data-connected") == "true":
            break
        tab.page.wait_for_timeout(250)
        tab.page.reload()
    tab.page.fill("#id_prompt", "no scripts here")
    tab.page.click("#submit-button")
    tab.page.wait_for_url(f"{hub.http}/spaces/echo/?request=*")
    for _ in range(40):  # what a person does without live updates: reload until it is done
        card = tab.page.query_selector(".request-card")
        if card and 'You said: "no scripts here".' in (card.text_content() or ""):
            break
        tab.page.wait_for_timeout(250)
        tab.page.reload()
    card_text = tab.page.text_content(".request-card") or ""
    assert 'You said: "no scripts here".' in card_text
    tab.shot("done")

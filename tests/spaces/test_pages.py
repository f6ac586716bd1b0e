"""The list of spaces, the space page, the base template and the 404 page."""

import re
from typing import Any

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

# A script without src runs inline (CSP blocks it); a JSON data block does not run.
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\b(?:src=|type=\"application/json\"))[^>]*>", re.I)


def assert_csp_clean(html: str) -> None:
    """The strict CSP allows no inline scripts, style attributes or style elements."""
    assert not INLINE_SCRIPT.search(html)
    assert " style=" not in html.lower()
    assert "<style" not in html.lower()
    assert "//cdn" not in html.lower()


# The list


def test_it_lists_active_spaces(client: Client, make_space: Any) -> None:
    make_space("Echo", title="Echo chamber", description="Says it back.")
    make_space("Whisper", title="Speech to text", feature_prompt=False, feature_audio=True, feature_files=True)
    make_space("Hidden", title="Hidden space", is_active=False)
    response = client.get("/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Echo chamber" in html and "Says it back." in html
    assert 'href="/spaces/echo/"' in html
    assert "Speech to text" in html and 'href="/spaces/whisper/"' in html
    assert "Hidden space" not in html
    assert_csp_clean(html)


def test_it_shows_the_feature_badges_of_each_space(client: Client, make_space: Any) -> None:
    make_space("Whisper", feature_prompt=False, feature_audio=True, feature_files=True)
    html = client.get("/").content.decode()
    badges = re.findall(r'feature-badge">([^<]+)<', html)
    assert badges == ["Audio", "Files"]


def test_it_says_when_there_are_no_spaces(client: Client, make_space: Any) -> None:
    make_space("Hidden", is_active=False)
    html = client.get("/").content.decode()
    assert 'id="no-spaces"' in html


def test_it_refuses_post_on_the_list(client: Client) -> None:
    assert client.post("/").status_code == 405


def test_it_answers_head_on_the_list(client: Client) -> None:
    assert client.head("/").status_code == 200


# The space page


def test_it_shows_a_space(client: Client, make_space: Any) -> None:
    make_space("Echo", title="Echo chamber", description="Says it\nback.")
    response = client.get("/spaces/echo/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "<h1" in html and "Echo chamber</h1>" in html
    assert "Says it<br>back." in html
    assert 'id="app-status"' in html and 'id="queue-size"' in html
    assert_csp_clean(html)


def test_it_asks_anonymous_visitors_to_log_in(client: Client, make_space: Any) -> None:
    make_space("Echo")
    html = client.get("/spaces/echo/").content.decode()
    assert 'href="/accounts/login/?next=/spaces/echo/"' in html
    assert 'id="request-form"' not in html


def test_it_shows_the_form_to_a_logged_in_user(client: Client, alice: Any, make_space: Any) -> None:
    make_space("Echo")
    client.force_login(alice)
    html = client.get("/spaces/echo/").content.decode()
    form = re.search(r'<form[^>]*id="request-form"[^>]*>', html)
    assert form is not None
    assert 'action="/spaces/echo/requests/"' in form.group(0)
    assert 'method="post"' in form.group(0)
    assert 'enctype="multipart/form-data"' in form.group(0)
    assert "csrfmiddlewaretoken" in html
    assert 'id="submit-button"' in html
    assert_csp_clean(html)


def test_it_shows_only_the_prompt_when_only_the_prompt_is_enabled(client: Client, alice: Any, make_space: Any) -> None:
    make_space("Echo")
    client.force_login(alice)
    html = client.get("/spaces/echo/").content.decode()
    assert re.search(r'<textarea[^>]*name="prompt"', html)
    for name in ("audio", "video", "files"):
        assert f'name="{name}"' not in html


def test_it_shows_only_the_enabled_file_inputs(client: Client, alice: Any, make_space: Any) -> None:
    make_space("Whisper", feature_prompt=False, feature_audio=True)
    client.force_login(alice)
    html = client.get("/spaces/whisper/").content.decode()
    audio = re.search(r'<input[^>]*name="audio"[^>]*>', html)
    assert audio is not None
    assert 'type="file"' in audio.group(0) and 'accept="audio/*"' in audio.group(0)
    for name in ("prompt", "video", "files"):
        assert f'name="{name}"' not in html


def test_it_shows_every_input_with_fitting_accept_types(client: Client, alice: Any, make_space: Any) -> None:
    make_space("All", feature_audio=True, feature_video=True, feature_files=True)
    client.force_login(alice)
    html = client.get("/spaces/all/").content.decode()
    inputs = {name: tag for tag, name in re.findall(r'(<(?:input|textarea)[^>]*name="(\w+)"[^>]*>)', html)}
    assert inputs["prompt"].startswith("<textarea")
    assert 'accept="audio/*"' in inputs["audio"] and 'type="file"' in inputs["audio"]
    assert 'accept="video/*"' in inputs["video"] and 'type="file"' in inputs["video"]
    assert "multiple" in inputs["files"] and 'type="file"' in inputs["files"]
    assert ".pdf" in inputs["files"] and ".png" in inputs["files"]
    assert "Up to 10 files." in html


def test_it_answers_404_for_an_inactive_space(client: Client, alice: Any, make_space: Any) -> None:
    make_space("Hidden", is_active=False)
    assert client.get("/spaces/hidden/").status_code == 404
    client.force_login(alice)
    assert client.get("/spaces/hidden/").status_code == 404


def test_it_answers_404_for_an_unknown_space(client: Client) -> None:
    assert client.get("/spaces/nope/").status_code == 404


def test_it_refuses_post_on_the_space_page(client: Client, alice: Any, make_space: Any) -> None:
    make_space("Echo")
    client.force_login(alice)
    assert client.post("/spaces/echo/", {"prompt": "hi"}).status_code == 405


def test_it_answers_head_on_the_space_page(client: Client, make_space: Any) -> None:
    make_space("Echo")
    assert client.head("/spaces/echo/").status_code == 200


# The 404 page and the base template


def test_it_renders_our_404_page(client: Client) -> None:
    response = client.get("/no/such/page/")
    assert response.status_code == 404
    html = response.content.decode()
    assert "There is no such page, or it is not yours to see." in html
    assert 'href="/"' in html
    assert_csp_clean(html)


def test_it_offers_anonymous_visitors_a_login_link(client: Client, make_space: Any) -> None:
    html = client.get("/").content.decode()
    assert 'href="/accounts/login/?next=/"' in html
    assert 'action="/accounts/logout/"' not in html
    assert 'href="/admin/"' not in html


def test_it_offers_a_logged_in_user_a_logout_button(client: Client, alice: Any) -> None:
    client.force_login(alice)
    html = client.get("/").content.decode()
    assert re.search(r'<form action="/accounts/logout/" method="post">', html)
    assert 'id="current-user">alice<' in html
    assert 'href="/admin/"' not in html


def test_it_links_staff_to_the_admin(client: Client, staff: Any) -> None:
    client.force_login(staff)
    assert 'href="/admin/"' in client.get("/").content.decode()


def test_it_offers_the_language_switcher(client: Client) -> None:
    html = client.get("/").content.decode()
    form = re.search(r'<form action="/i18n/setlang/" method="post".*?</form>', html, re.S)
    assert form is not None
    assert 'value="en"' in form.group(0) and 'value="zh-hans"' in form.group(0)
    assert "简体中文" in form.group(0) and "English" in form.group(0)


def test_it_sends_the_strict_content_security_policy(client: Client) -> None:
    policy = client.get("/")["Content-Security-Policy"]
    assert "default-src 'self'" in policy
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy


def test_it_serves_bootstrap_and_our_stylesheet_locally(client: Client) -> None:
    html = client.get("/").content.decode()
    assert 'href="/static/bootstrap/css/bootstrap.min.css"' in html
    assert 'href="/static/spacehub/spacehub.css"' in html


# Login and logout, with our templates


def test_it_renders_the_login_page(client: Client) -> None:
    response = client.get("/accounts/login/?next=/spaces/echo/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="username"' in html and 'name="password"' in html
    assert 'name="next" value="/spaces/echo/"' in html
    assert_csp_clean(html)


def test_it_logs_in_and_goes_back(client: Client, alice: Any) -> None:
    response = client.post(
        "/accounts/login/", {"username": "alice", "password": "alice-password", "next": "/spaces/echo/"}
    )
    assert response.status_code == 302
    assert response["Location"] == "/spaces/echo/"


def test_it_refuses_a_wrong_password(client: Client, alice: Any) -> None:
    response = client.post("/accounts/login/", {"username": "alice", "password": "wrong"})
    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_it_logs_out_by_post_only(client: Client, alice: Any) -> None:
    client.force_login(alice)
    assert client.get("/accounts/logout/").status_code == 405
    response = client.post("/accounts/logout/")
    assert response.status_code == 302
    assert "_auth_user_id" not in client.session


def test_it_gives_the_page_script_its_hooks(client: Client, alice: Any, make_space: Any) -> None:
    """What static/spacehub/space.js looks for on the space page."""
    make_space("Echo")
    client.force_login(alice)
    html = client.get("/spaces/echo/").content.decode()
    for element_id in (
        "app-status",
        "queue-size",
        "hub-unreachable",
        "request-form",
        "submit-button",
        "not-connected-reason",
        "form-error",
        "requests",
        "request-template",
        "space-config",
    ):
        assert f'id="{element_id}"' in html, element_id
    template = html[html.index('<template id="request-template">') : html.index("</template>")]
    for hook in (
        "request-status",
        "request-position",
        "progress",
        "progress-bar",
        "request-message",
        "result-text",
        "result-files",
        "request-error",
        "cancel-button",
        "request-when",
    ):
        assert hook in template, hook
    assert '<script src="/static/spacehub/space.js" defer></script>' in html
    assert '<script id="space-config" type="application/json">' in html


def test_it_shows_the_not_connected_notice_while_no_app_is_connected(
    client: Client, alice: Any, make_space: Any
) -> None:
    make_space("Echo")
    client.force_login(alice)
    html = client.get("/spaces/echo/").content.decode()
    notice = re.search(r'<p[^>]*id="not-connected-reason"[^>]*>', html)
    assert notice is not None and " hidden" not in notice.group(0)
    assert 'data-connected="false"' in html

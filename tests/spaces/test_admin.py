"""The Space admin: staff with the space permissions edit spaces and rotate tokens; nobody else gets in."""

import re
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from spaces.models import Space

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/spaces/space/"
ADD = "/admin/spaces/space/add/"


def change_url(space: Space) -> str:
    return f"/admin/spaces/space/{space.pk}/change/"


def rotate_url(space: Space) -> str:
    return f"/admin/spaces/space/{space.pk}/rotate-token/"


def grant(user: Any, *actions: str) -> None:
    codenames = [f"{action}_space" for action in actions]
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="spaces", codename__in=codenames))


def form_data(**overrides: Any) -> dict[str, Any]:
    data = {
        "name": "Whisper",
        "slug": "",
        "title": "Speech to text",
        "description": "Upload a recording.",
        "is_active": "on",
        "feature_prompt": "on",
        "feature_audio": "on",
        "timeout_seconds": "60",
        "max_queue_size": "10",
        "max_upload_mb": "5",
        "_save": "Save",
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


@pytest.fixture
def staff_client(client: Client, staff: Any) -> Client:
    """Sam, staff with the space permissions (what a superuser gives a staff member who edits spaces)."""
    grant(staff, "view", "add", "change", "delete")
    client.force_login(staff)
    return client


@pytest.fixture
def viewer_client(client: Client, staff: Any) -> Client:
    """Sam with only the view permission."""
    grant(staff, "view")
    client.force_login(staff)
    return client


# Who gets in


def test_it_sends_anonymous_visitors_to_the_admin_login(client: Client, make_space: Any) -> None:
    space, _ = make_space()
    for url in (CHANGELIST, ADD, change_url(space)):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/")


def test_it_refuses_non_staff(client: Client, alice: Any, make_space: Any) -> None:
    grant(alice, "view", "add", "change", "delete")  # permissions alone do not open the admin
    client.force_login(alice)
    space, _ = make_space()
    for url in (CHANGELIST, ADD, change_url(space)):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/")


def test_it_refuses_non_staff_a_token_rotation(client: Client, alice: Any, make_space: Any) -> None:
    space, token = make_space()
    client.force_login(alice)
    response = client.post(rotate_url(space))
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
    space.refresh_from_db()
    assert space.check_token(token)


def test_it_refuses_staff_without_the_space_permissions(client: Client, staff: Any, make_space: Any) -> None:
    space, token = make_space()
    client.force_login(staff)
    assert client.get(CHANGELIST).status_code == 403
    assert client.get(change_url(space)).status_code == 403
    assert client.post(rotate_url(space)).status_code == 403
    space.refresh_from_db()
    assert space.check_token(token)


def test_it_lets_a_superuser_in(client: Client, django_user_model: Any, make_space: Any) -> None:
    make_space()
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.com", "pw"))
    assert client.get(CHANGELIST).status_code == 200


# The changelist


def test_it_lists_spaces_with_features_and_active_state(staff_client: Client, make_space: Any) -> None:
    space, token = make_space("Whisper", title="Speech to text", feature_audio=True, is_active=False)
    response = staff_client.get(CHANGELIST)
    assert response.status_code == 200
    html = response.content.decode()
    for column in ("display_title", "name", "is_active", "input_features", "timeout_seconds", "token_prefix"):
        assert f"column-{column}" in html
    row = re.search(r"<tr>.*?Speech to text.*?</tr>", html, re.S)
    assert row is not None
    assert '<td class="field-is_active"><img src="/static/admin/img/icon-no.svg" alt="False">' in row.group(0)
    assert '<td class="field-input_features">prompt, audio</td>' in row.group(0)
    assert space.token_prefix in row.group(0)
    assert token not in html
    assert space.token_hash not in html


def test_it_filters_the_changelist_by_feature(staff_client: Client, make_space: Any) -> None:
    make_space("Echo")
    make_space("Whisper", feature_audio=True)
    html = staff_client.get(CHANGELIST, {"feature_audio__exact": "1"}).content.decode()
    assert "Whisper" in html
    assert ">Echo<" not in html


# Add and change


def test_it_shows_the_fieldsets(staff_client: Client, make_space: Any) -> None:
    space, _ = make_space()
    html = staff_client.get(change_url(space)).content.decode()
    for heading in ("Input features", "Limits", "App connection"):
        assert f">{heading}</h2>" in html
    for field in ("name", "slug", "title", "description", "is_active", "timeout_seconds", "max_queue_size"):
        assert f'name="{field}"' in html
    assert 'name="token_hash"' not in html


def test_it_adds_a_space(staff_client: Client) -> None:
    response = staff_client.post(ADD, form_data())
    assert response.status_code == 302, response.content.decode()[:3000]
    space = Space.objects.get(name="Whisper")
    assert space.slug == "whisper"
    assert space.features == {"prompt": True, "audio": True, "video": False, "files": False}
    assert (space.timeout_seconds, space.max_queue_size, space.max_upload_mb) == (60, 10, 5)
    assert space.has_token is False


def test_it_shows_how_to_get_a_token_for_a_new_space(staff_client: Client) -> None:
    staff_client.post(ADD, form_data())
    space = Space.objects.get(name="Whisper")
    html = staff_client.get(change_url(space)).content.decode()
    assert "No token yet" in html
    assert 'id="rotate-token"' in html


def test_it_offers_no_token_button_on_the_add_page(staff_client: Client) -> None:
    html = staff_client.get(ADD).content.decode()
    assert 'id="rotate-token"' not in html


def test_it_refuses_a_space_without_features(staff_client: Client) -> None:
    response = staff_client.post(ADD, form_data(feature_prompt=None, feature_audio=None))
    assert response.status_code == 200
    assert "Enable at least one input feature" in response.content.decode()
    assert not Space.objects.exists()


def test_it_refuses_a_duplicate_name(staff_client: Client, make_space: Any) -> None:
    make_space("Whisper")
    response = staff_client.post(ADD, form_data(slug="other"))
    assert response.status_code == 200
    assert Space.objects.filter(name="Whisper").count() == 1


def test_it_changes_a_space(staff_client: Client, make_space: Any) -> None:
    space, token = make_space("Whisper")
    response = staff_client.post(change_url(space), form_data(slug="whisper", feature_prompt=None, is_active=None))
    assert response.status_code == 302
    space.refresh_from_db()
    assert space.features == {"prompt": False, "audio": True, "video": False, "files": False}
    assert space.is_active is False
    assert space.check_token(token)  # saving the form leaves the token alone


def test_it_shows_the_token_prefix_but_never_the_token(staff_client: Client, make_space: Any) -> None:
    space, token = make_space()
    html = staff_client.get(change_url(space)).content.decode()
    assert space.token_prefix in html
    assert token not in html
    assert space.token_hash not in html


def test_it_redirects_for_an_object_id_that_is_not_a_number(staff_client: Client) -> None:
    response = staff_client.get("/admin/spaces/space/not-a-number/change/")
    assert response.status_code == 302


# Rotating the token: the button on the change page


def test_it_puts_the_rotate_button_outside_the_change_form(staff_client: Client, make_space: Any) -> None:
    space, _ = make_space()
    html = staff_client.get(change_url(space)).content.decode()
    button = re.search(r'<button[^>]*id="rotate-token"[^>]*>', html)
    assert button is not None
    assert 'form="rotate-token-form"' in button.group(0)
    change_form_end = html.index("</form>", html.index('id="space_form"'))
    rotate_form = html.index(f'<form id="rotate-token-form" method="post" action="{rotate_url(space)}"')
    assert rotate_form > change_form_end  # HTML drops a form nested in another
    assert "csrfmiddlewaretoken" in html[rotate_form : html.index("</form>", rotate_form)]


def test_it_rotates_the_token_and_shows_it_once(staff_client: Client, make_space: Any) -> None:
    space, old = make_space("Speech to text")
    response = staff_client.post(rotate_url(space))
    assert response.status_code == 200
    html = response.content.decode()
    token = re.search(r'<code class="app-token">(sh_[A-Za-z0-9_-]+)</code>', html)
    assert token is not None
    new = token.group(1)
    space.refresh_from_db()
    assert space.check_token(new)
    assert not space.check_token(old)
    command = f"python -m relay.client --hub http://testserver --space &quot;Speech to text&quot; --token {new}"
    assert command in html
    assert new not in staff_client.get(change_url(space)).content.decode()


def test_it_refuses_get_on_the_rotate_url(staff_client: Client, make_space: Any) -> None:
    space, token = make_space()
    assert staff_client.get(rotate_url(space)).status_code == 405
    space.refresh_from_db()
    assert space.check_token(token)


def test_it_answers_404_for_rotating_a_missing_space(staff_client: Client) -> None:
    assert staff_client.post("/admin/spaces/space/999999/rotate-token/").status_code == 404


def test_it_refuses_a_rotation_without_the_csrf_token(staff: Any, make_space: Any) -> None:
    grant(staff, "view", "change")
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)
    space, token = make_space()
    assert client.post(rotate_url(space)).status_code == 403
    space.refresh_from_db()
    assert space.check_token(token)


# Rotating tokens: the changelist action


def test_it_rotates_tokens_with_the_action(staff_client: Client, make_space: Any) -> None:
    echo, echo_token = make_space("Echo")
    whisper, whisper_token = make_space("Whisper")
    make_space("Untouched")
    response = staff_client.post(
        CHANGELIST, {"action": "rotate_tokens", "_selected_action": [echo.pk, whisper.pk], "index": 0}
    )
    assert response.status_code == 200
    html = response.content.decode()
    shown = re.findall(r'<code class="app-token">(sh_[A-Za-z0-9_-]+)</code>', html)
    assert len(shown) == 2
    echo.refresh_from_db()
    whisper.refresh_from_db()
    assert not echo.check_token(echo_token) and not whisper.check_token(whisper_token)
    assert {echo.check_token(t) or whisper.check_token(t) for t in shown} == {True}
    assert "--space &quot;Echo&quot;" in html and "--space &quot;Whisper&quot;" in html
    assert "Untouched" not in html


# View-only staff: may look, may not rotate


def test_it_lets_view_only_staff_look(viewer_client: Client, make_space: Any) -> None:
    space, _ = make_space()
    assert viewer_client.get(CHANGELIST).status_code == 200
    html = viewer_client.get(change_url(space)).content.decode()
    assert 'id="rotate-token"' not in html
    assert "rotate_tokens" not in viewer_client.get(CHANGELIST).content.decode()


def test_it_refuses_view_only_staff_a_rotation(viewer_client: Client, make_space: Any) -> None:
    space, token = make_space()
    assert viewer_client.post(rotate_url(space)).status_code == 403
    response = viewer_client.post(CHANGELIST, {"action": "rotate_tokens", "_selected_action": [space.pk], "index": 0})
    assert "app-token" not in response.content.decode()  # the action is not offered, so not run
    space.refresh_from_db()
    assert space.check_token(token)


def test_it_refuses_view_only_staff_a_change(viewer_client: Client, make_space: Any) -> None:
    space, _ = make_space("Whisper")
    response = viewer_client.post(change_url(space), form_data(slug="whisper", title="Hacked"))
    assert response.status_code == 403
    space.refresh_from_db()
    assert space.title == "Whisper"

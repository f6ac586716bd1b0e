"""The Space model: defaults, slugs, features, limits and the app token."""

from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError

from spaces.models import FEATURES, Space, token_rotated

pytestmark = pytest.mark.django_db


def test_it_has_the_documented_defaults() -> None:
    space = Space.objects.create(name="Echo")
    assert space.is_active is True
    assert space.features == {"prompt": True, "audio": False, "video": False, "files": False}
    assert space.timeout_seconds == 120
    assert space.max_queue_size == 50
    assert space.max_upload_mb == 25
    assert space.has_token is False
    assert space.token_hash == ""
    assert space.token_prefix == ""


def test_it_makes_a_slug_from_the_name() -> None:
    assert Space.objects.create(name="Speech to Text").slug == "speech-to-text"


def test_it_keeps_slugs_unique() -> None:
    first = Space.objects.create(name="Echo")
    second = Space.objects.create(name="echo!")
    assert (first.slug, second.slug) == ("echo", "echo-2")


def test_it_keeps_a_slug_that_was_given() -> None:
    space = Space.objects.create(name="Echo", slug="my-echo")
    space.title = "Changed"
    space.save()
    space.refresh_from_db()
    assert space.slug == "my-echo"


def test_it_makes_a_slug_for_a_name_without_latin_letters() -> None:
    assert Space.objects.create(name="回声").slug == "space"


def test_it_refuses_a_second_space_with_the_same_name() -> None:
    Space.objects.create(name="Echo")
    with pytest.raises(IntegrityError):
        Space.objects.create(name="Echo", slug="other")


def test_it_lists_only_active_spaces() -> None:
    on = Space.objects.create(name="On")
    Space.objects.create(name="Off", is_active=False)
    assert list(Space.objects.active()) == [on]


def test_it_names_itself_by_title_or_name() -> None:
    assert str(Space(name="echo", title="Echo chamber")) == "Echo chamber"
    assert str(Space(name="echo")) == "echo"


def test_it_links_to_its_page() -> None:
    assert Space.objects.create(name="Echo").get_absolute_url() == "/spaces/echo/"


def test_it_reports_its_features() -> None:
    space = Space(name="All", feature_prompt=False, feature_audio=True, feature_video=True, feature_files=True)
    assert space.features == {"prompt": False, "audio": True, "video": True, "files": True}
    assert space.enabled_features == ["audio", "video", "files"]
    assert set(space.features) == set(FEATURES)


def test_it_validates_its_limits() -> None:
    space = Space(name="Echo", timeout_seconds=0, max_queue_size=0, max_upload_mb=0)
    with pytest.raises(ValidationError) as caught:
        space.full_clean()
    assert set(caught.value.message_dict) == {"timeout_seconds", "max_queue_size", "max_upload_mb"}


def test_it_refuses_a_space_without_input_features() -> None:
    space = Space(name="Mute", feature_prompt=False)
    with pytest.raises(ValidationError, match="at least one input feature"):
        space.full_clean()


def test_it_stores_only_a_hash_of_the_token() -> None:
    space = Space.objects.create(name="Echo")
    token = space.rotate_token()
    space.refresh_from_db()
    assert token.startswith("sh_")
    assert space.token_hash and space.token_hash != token
    assert space.token_prefix == token[:11]
    assert space.token_created_at is not None
    stored = [str(getattr(space, field.attname)) for field in Space._meta.concrete_fields]
    assert not any(token in value for value in stored)


def test_it_accepts_its_token() -> None:
    space = Space.objects.create(name="Echo")
    token = space.rotate_token()
    assert Space.objects.get(pk=space.pk).check_token(token)


def test_it_refuses_a_wrong_token() -> None:
    space = Space.objects.create(name="Echo")
    token = space.rotate_token()
    assert not space.check_token(token[:-1] + ("A" if token[-1] != "A" else "B"))
    assert not space.check_token("")
    assert not space.check_token(space.token_hash)


def test_it_refuses_every_token_before_one_was_made() -> None:
    space = Space.objects.create(name="Echo")
    assert not space.check_token("")
    assert not space.check_token("sh_anything")


def test_it_refuses_another_spaces_token(make_space: Any) -> None:
    echo, _ = make_space("Echo")
    _, other_token = make_space("Other")
    assert not echo.check_token(other_token)


def test_it_stops_accepting_the_old_token_after_a_rotation(make_space: Any) -> None:
    space, old = make_space()
    new = space.rotate_token()
    space.refresh_from_db()
    assert new != old
    assert space.check_token(new)
    assert not space.check_token(old)


def test_it_announces_a_rotation(make_space: Any) -> None:
    space, _ = make_space()
    received: list[Space] = []

    def receiver(sender: Any, space: Space, **kwargs: Any) -> None:
        received.append(space)

    token_rotated.connect(receiver)
    try:
        space.rotate_token()
    finally:
        token_rotated.disconnect(receiver)
    assert received == [space]


def test_it_writes_the_command_that_connects_an_app() -> None:
    space = Space(name="Speech to text")
    assert space.connect_command("https://hub.example", "sh_tok") == (
        'python -m relay.client --hub https://hub.example --space "Speech to text" --token sh_tok'
    )

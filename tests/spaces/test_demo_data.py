"""manage.py demo_data: the demo staff user and the Echo space, made once."""

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from spaces.models import Space

pytestmark = pytest.mark.django_db


def demo_data(*args: str) -> str:
    out = StringIO()
    call_command("demo_data", *args, stdout=out)
    return out.getvalue()


def test_it_creates_the_staff_user_and_the_echo_space() -> None:
    output = demo_data("--hub", "http://127.0.0.1:8123")
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_staff and admin.is_superuser
    password = output.split("Staff user: admin / ", 1)[1].split()[0]
    assert admin.check_password(password)
    echo = Space.objects.get(name="Echo")
    assert echo.is_active and echo.features["prompt"]
    token = next(word.split("=", 1)[-1] for word in output.split() if "sh_" in word)
    assert echo.check_token(token)
    assert "http://127.0.0.1:8123/spaces/echo/" in output
    assert f'--hub http://127.0.0.1:8123 --space "Echo" --token {token}' in output


def test_it_changes_nothing_the_second_time() -> None:
    demo_data()
    echo = Space.objects.get(name="Echo")
    admin = get_user_model().objects.get(username="admin")
    output = demo_data()
    echo_after = Space.objects.get(name="Echo")
    assert echo_after.token_hash == echo.token_hash
    assert get_user_model().objects.get(username="admin").password == admin.password
    assert "sh_" not in output
    assert "Staff user admin exists" in output
    assert "Space Echo exists" in output
    assert Space.objects.count() == 1


def test_it_gives_an_echo_space_without_a_token_one(make_space: object) -> None:
    Space.objects.create(name="Echo", title="Mine")
    output = demo_data()
    echo = Space.objects.get(name="Echo")
    assert echo.title == "Mine"
    assert echo.has_token
    assert "sh_" in output

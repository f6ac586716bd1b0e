"""manage.py setup_space: create or update a space, make a new app token, print it (or JSON)."""

import json
import os
import re
import subprocess
import sys
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from spaces.models import Space

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]


def setup_space(*args: str) -> str:
    out = StringIO()
    call_command("setup_space", *args, stdout=out)
    return out.getvalue()


def token_in(output: str) -> str:
    return next(word for word in output.split() if word.startswith("sh_"))


def test_it_creates_a_space_and_prints_its_token_and_the_connect_command() -> None:
    output = setup_space("Echo")
    space = Space.objects.get(name="Echo")
    assert space.slug == "echo"
    assert space.features == {"prompt": True, "audio": False, "video": False, "files": False}
    assert space.timeout_seconds == 120
    token = token_in(output)
    assert space.check_token(token)
    assert "Created space 'Echo'" in output
    assert f'python -m relay.client --hub http://127.0.0.1:8000 --space "Echo" --token {token}' in output


def test_it_sets_the_title_features_and_timeout() -> None:
    setup_space("Whisper", "--title", "Speech to text", "--features", "audio, files", "--timeout", "300")
    space = Space.objects.get(name="Whisper")
    assert space.title == "Speech to text"
    assert space.features == {"prompt": False, "audio": True, "video": False, "files": True}
    assert space.timeout_seconds == 300


def test_it_uses_the_given_hub_url() -> None:
    output = setup_space("Echo", "--hub", "https://hub.example")
    assert "--hub https://hub.example --space" in output


def test_it_updates_only_the_given_settings(make_space: Any) -> None:
    make_space("Whisper", title="Speech to text", feature_audio=True, timeout_seconds=300, description="Kept.")
    output = setup_space("Whisper", "--timeout", "60")
    space = Space.objects.get(name="Whisper")
    assert "Updated space 'Whisper'" in output
    assert space.timeout_seconds == 60
    assert space.title == "Speech to text"
    assert space.description == "Kept."
    assert space.features == {"prompt": True, "audio": True, "video": False, "files": False}
    assert Space.objects.count() == 1


def test_it_rotates_the_token_each_time(make_space: Any) -> None:
    space, first = make_space("Echo")
    second = token_in(setup_space("Echo"))
    third = token_in(setup_space("Echo"))
    space.refresh_from_db()
    assert len({first, second, third}) == 3
    assert space.check_token(third)
    assert not space.check_token(first)
    assert not space.check_token(second)


def test_it_prints_one_json_object_and_nothing_else() -> None:
    output = setup_space("Whisper", "--features", "prompt,audio", "--timeout", "90", "--json")
    assert output.count("\n") == 1
    payload = json.loads(output)
    assert set(payload) == {"name", "slug", "token", "features", "timeout_seconds"}
    assert payload["name"] == "Whisper"
    assert payload["slug"] == "whisper"
    assert payload["features"] == {"prompt": True, "audio": True, "video": False, "files": False}
    assert payload["timeout_seconds"] == 90
    assert Space.objects.get(name="Whisper").check_token(payload["token"])


def test_it_rotates_with_json_too(make_space: Any) -> None:
    space, old = make_space("Echo")
    payload = json.loads(setup_space("Echo", "--json"))
    space.refresh_from_db()
    assert space.check_token(payload["token"])
    assert not space.check_token(old)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--features", "prompt,smell"], "Unknown feature(s): smell"),
        (["--features", ","], "Enable at least one input feature"),
        (["--timeout", "0"], "--timeout must be between 1 and 86400 seconds"),
        (["--timeout", "86401"], "--timeout must be between 1 and 86400 seconds"),
        (["--title", "x" * 201], "at most 200 characters"),
    ],
)
def test_it_refuses_bad_settings(args: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=re.escape(message)):
        setup_space("Echo", *args)
    assert not Space.objects.exists()


@pytest.mark.parametrize("name", ["", "   ", "x" * 101])
def test_it_refuses_a_bad_name(name: str) -> None:
    with pytest.raises(CommandError, match="1 to 100 characters"):
        setup_space(name)


def test_it_keeps_the_old_token_when_it_refuses(make_space: Any) -> None:
    space, token = make_space("Echo")
    with pytest.raises(CommandError):
        setup_space("Echo", "--features", "nope")
    space.refresh_from_db()
    assert space.check_token(token)


def test_it_prints_only_json_on_stdout_from_the_command_line(tmp_path: Path) -> None:
    """The real process: nothing else (logging, warnings) may reach stdout."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "DEBUG": "1",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "MEDIA_ROOT": str(tmp_path / "media"),
    }
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "--noinput"], env=env, cwd=ROOT, check=True, capture_output=True)
    done = subprocess.run(
        [*manage, "setup_space", "Echo", "--features", "prompt,files", "--json"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    assert payload["name"] == "Echo"
    assert payload["features"]["files"] is True
    assert done.stdout == json.dumps(payload) + "\n"


def test_it_exits_non_zero_on_a_bad_feature_from_the_command_line(tmp_path: Path) -> None:
    env = {"PATH": os.environ.get("PATH", ""), "DEBUG": "1", "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"}
    done = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "setup_space", "Echo", "--features", "smell", "--json"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0
    assert done.stdout == ""
    assert "Unknown feature(s): smell" in done.stderr

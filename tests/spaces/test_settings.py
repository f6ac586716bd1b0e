"""Settings from the environment (PROTOCOL.md section 4), through strict helpers."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from spacehub.settings import env_bool, env_int, env_list, env_str

ROOT = Path(__file__).resolve().parents[2]

SHOW_SETTINGS = (
    "import django; from django.conf import settings; django.setup(); "
    "print(settings.DEBUG, settings.DATABASES['default']['ENGINE'], settings.CHANNEL_LAYERS['default']['BACKEND'])"
)


def run_hub(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run Python in a fresh process with exactly `env` (nothing from this test process leaks in)."""
    full_env = {"PATH": os.environ.get("PATH", ""), "DJANGO_SETTINGS_MODULE": "spacehub.settings", **env}
    return subprocess.run(
        [sys.executable, *args], env=full_env, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )


# The hub refuses to start without SECRET_KEY when DEBUG is off


@pytest.mark.parametrize("debug", [None, "0", "false"])
def test_it_refuses_to_start_without_a_secret_key(debug: str | None) -> None:
    env = {} if debug is None else {"DEBUG": debug}
    done = run_hub(env, "manage.py", "check")
    assert done.returncode != 0
    assert "SECRET_KEY is not set. With DEBUG off the hub refuses to start without it" in done.stderr
    assert "set DEBUG=1 for local development" in done.stderr


def test_it_refuses_an_empty_secret_key() -> None:
    done = run_hub({"DEBUG": "0", "SECRET_KEY": ""}, "manage.py", "check")
    assert done.returncode != 0
    assert "SECRET_KEY is not set" in done.stderr


def test_it_refuses_to_serve_the_asgi_app_without_a_secret_key() -> None:
    done = run_hub({"DEBUG": "0"}, "-c", "import spacehub.asgi")
    assert done.returncode != 0
    assert "SECRET_KEY is not set" in done.stderr


def test_it_starts_with_a_secret_key() -> None:
    done = run_hub({"DEBUG": "0", "SECRET_KEY": "a-long-random-production-key"}, "manage.py", "check")
    assert done.returncode == 0, done.stderr
    assert "System check identified no issues" in done.stdout


def test_it_starts_in_debug_without_a_secret_key() -> None:
    done = run_hub({"DEBUG": "1"}, "manage.py", "check")
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("value", ["maybe", "2"])
def test_it_refuses_a_debug_value_that_is_not_a_boolean(value: str) -> None:
    done = run_hub({"DEBUG": value, "SECRET_KEY": "key"}, "manage.py", "check")
    assert done.returncode != 0
    assert f"DEBUG={value!r} is not a boolean" in done.stderr


def test_it_runs_embedded_with_nothing_set() -> None:
    done = run_hub({"DEBUG": "1"}, "-c", SHOW_SETTINGS)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [
        "True",
        "django.db.backends.sqlite3",
        "channels.layers.InMemoryChannelLayer",
    ]


def test_it_reads_the_database_and_redis_urls() -> None:
    env = {
        "SECRET_KEY": "key",
        "DATABASE_URL": "postgres://user:pass@db.example:5432/hub",
        "REDIS_URL": "redis://redis.example:6379/0",
    }
    done = run_hub(env, "-c", SHOW_SETTINGS)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [
        "False",
        "django.db.backends.postgresql",
        "channels_redis.core.RedisChannelLayer",
    ]


def test_it_reads_hosts_origins_and_folders(tmp_path: Path) -> None:
    script = (
        "import django; from django.conf import settings; django.setup(); "
        "print(settings.ALLOWED_HOSTS); print(settings.CSRF_TRUSTED_ORIGINS); "
        "print(settings.MEDIA_ROOT); print(settings.STATIC_ROOT)"
    )
    env = {
        "SECRET_KEY": "key",
        "ALLOWED_HOSTS": "hub.example, www.hub.example,",
        "CSRF_TRUSTED_ORIGINS": "https://hub.example",
        "MEDIA_ROOT": str(tmp_path / "media"),
        "STATIC_ROOT": str(tmp_path / "static"),
    }
    done = run_hub(env, "-c", script)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "['hub.example', 'www.hub.example']",
        "['https://hub.example']",
        str(tmp_path / "media"),
        str(tmp_path / "static"),
    ]


# The helpers


@pytest.mark.parametrize("raw", ["1", "true", "True", "TRUE", "yes", "on", " 1 "])
def test_it_reads_true(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("SPACEHUB_FLAG", raw)
    assert env_bool("SPACEHUB_FLAG") is True


@pytest.mark.parametrize("raw", ["0", "false", "False", "no", "off"])
def test_it_reads_false(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("SPACEHUB_FLAG", raw)
    assert env_bool("SPACEHUB_FLAG", default=True) is False


@pytest.mark.parametrize("raw", [None, "", "  "])
def test_it_uses_the_default_for_an_unset_boolean(monkeypatch: pytest.MonkeyPatch, raw: str | None) -> None:
    if raw is None:
        monkeypatch.delenv("SPACEHUB_FLAG", raising=False)
    else:
        monkeypatch.setenv("SPACEHUB_FLAG", raw)
    assert env_bool("SPACEHUB_FLAG") is False
    assert env_bool("SPACEHUB_FLAG", default=True) is True


@pytest.mark.parametrize("raw", ["maybe", "2", "-1", "t", "y"])
def test_it_refuses_a_bad_boolean(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("SPACEHUB_FLAG", raw)
    with pytest.raises(ImproperlyConfigured, match=r"SPACEHUB_FLAG=.* is not a boolean"):
        env_bool("SPACEHUB_FLAG")


def test_it_reads_a_whole_number(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPACEHUB_NUMBER", "42")
    assert env_int("SPACEHUB_NUMBER", 7) == 42
    monkeypatch.setenv("SPACEHUB_NUMBER", "")
    assert env_int("SPACEHUB_NUMBER", 7) == 7


def test_it_refuses_a_bad_whole_number(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPACEHUB_NUMBER", "forty")
    with pytest.raises(ImproperlyConfigured, match="SPACEHUB_NUMBER='forty' is not a whole number"):
        env_int("SPACEHUB_NUMBER", 7)


def test_it_reads_a_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPACEHUB_LIST", " a, b ,,c ")
    assert env_list("SPACEHUB_LIST") == ["a", "b", "c"]
    monkeypatch.delenv("SPACEHUB_LIST")
    assert env_list("SPACEHUB_LIST", "x,y") == ["x", "y"]
    assert env_list("SPACEHUB_LIST") == []


def test_it_reads_a_string(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPACEHUB_TEXT", raising=False)
    assert env_str("SPACEHUB_TEXT", "fallback") == "fallback"
    monkeypatch.setenv("SPACEHUB_TEXT", "value")
    assert env_str("SPACEHUB_TEXT") == "value"

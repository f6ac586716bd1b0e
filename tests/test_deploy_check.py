"""`manage.py check --deploy` with the documented production environment (deploy/env.example)."""

import os
import re
import secrets
import subprocess
import sys

from tests.live import ROOT

ENV_FILE = ROOT / "deploy" / "env.example"


def production_env(**changes: str) -> dict[str, str]:
    """deploy/env.example as the systemd unit reads it, with a fresh SECRET_KEY, and nothing else."""
    env = {"PATH": os.environ.get("PATH", ""), "DJANGO_SETTINGS_MODULE": "spacehub.settings"}
    for line in ENV_FILE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            env[key] = value
    env["SECRET_KEY"] = secrets.token_urlsafe(50)
    env.update(changes)
    return env


def check_deploy(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_it_passes_with_the_documented_production_environment() -> None:
    result = check_deploy(production_env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_it_reports_a_hub_that_is_not_set_up_for_https() -> None:
    result = check_deploy(production_env(HTTPS="0"))
    assert result.returncode != 0
    for code in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert code in result.stderr, result.stderr


def test_it_refuses_to_start_without_a_secret_key() -> None:
    result = check_deploy(production_env(SECRET_KEY=""))
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


def test_it_refuses_a_metrics_allow_list_that_is_not_addresses() -> None:
    result = check_deploy(production_env(METRICS_ALLOWED_IPS="127.0.0.1,prometheus.internal"))
    assert result.returncode != 0
    assert "'prometheus.internal' is not an IP address or network" in result.stderr


def test_it_refuses_an_unknown_log_format() -> None:
    result = check_deploy(production_env(LOG_FORMAT="xml"))
    assert result.returncode != 0
    assert "LOG_FORMAT='xml' is not one of: plain, json" in result.stderr


def test_it_documents_every_variable_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    documented = set(re.findall(r"^\| `([A-Z_]+)` \|", readme, re.MULTILINE))
    read = set(re.findall(r"env_\w+\(\s*\"([A-Z_]+)\"", (ROOT / "spacehub" / "settings.py").read_text()))
    assert read - documented == set(), "settings read these, the README's table does not explain them"
    assert set(production_env()) - {"PATH", "DJANGO_SETTINGS_MODULE"} <= documented

"""relay/client needs only `websockets`: it imports and serves from a fresh virtualenv holding nothing else."""

import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import websockets

from tests.client.conftest import MockApp, submit, wait_connected, wait_status
from tests.live import ROOT, Daphne, WebUser

pytestmark = [pytest.mark.e2e, pytest.mark.hubs(1)]


@pytest.fixture
def bare_python(tmp_path: Path) -> tuple[Path, Path]:
    """(python, folder): a new venv with only websockets, and a folder holding only relay/client."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    # This checkout's pip installs into the new venv: quicker than bootstrapping pip there.
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--quiet",
            f"websockets=={websockets.__version__}",
        ],
        check=True,
    )
    code = tmp_path / "code"
    shutil.copytree(ROOT / "relay" / "client", code / "relay" / "client", ignore=shutil.ignore_patterns("__pycache__"))
    (code / "relay" / "__init__.py").write_text("")
    return python, code


def test_it_imports_without_django(bare_python: tuple[Path, Path]) -> None:
    python, code = bare_python
    check = (
        "import sys, relay.client, relay.client.__main__; "
        "assert not [m for m in sys.modules if m.split('.')[0] in ('django', 'channels', 'spaces')]; "
        "import importlib.metadata as md; print(sorted(d.metadata['Name'] for d in md.distributions()))"
    )
    out = subprocess.run([python, "-c", check], cwd=code, env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['websockets']"


def test_the_mock_app_serves_from_the_bare_venv(
    hub: Daphne, web: WebUser, make_space: Any, bare_python: tuple[Path, Path], tmp_path: Path
) -> None:
    python, code = bare_python
    space, token = make_space("Echo")
    app = MockApp(
        tmp_path / "bare.log",
        ["--hub", hub.http, "--space", "Echo", "--token", token, "--delay", "0"],
        python=python,
        cwd=code,
        base_env={"PATH": "/usr/bin:/bin"},
    )
    try:
        wait_connected(hub, space.slug)
        assert wait_status(web, submit(web, space.slug, "bare"))["outputs"]["text"] == 'You said: "bare".'
        app.signal(signal.SIGTERM)
        assert app.wait() == 0
    finally:
        app.kill()

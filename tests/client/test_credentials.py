"""A wrong token or an unknown space: the app stops at once with a clear message and exit code 2."""

from collections.abc import Callable
from typing import Any

import pytest

from tests.client.conftest import MockApp, space_status
from tests.live import Daphne

pytestmark = [pytest.mark.e2e, pytest.mark.hubs(1)]


def test_it_exits_2_on_a_wrong_token(hub: Daphne, make_space: Any, mock_app: Callable[..., MockApp]) -> None:
    space, _token = make_space("Echo")
    app = mock_app(hub, [("Echo", "sh_not-the-token")], "--delay", "0")

    assert app.wait(15) == 2
    out = app.output()
    assert 'error: [Echo] The hub refused space "Echo"' in out, out
    assert "Check the space name and its app token" in out
    assert "retrying" not in out
    assert "Traceback" not in out
    assert space_status(hub, space.slug)["connected"] is False


def test_it_exits_2_on_an_unknown_space_while_serving_others(
    hub: Daphne, make_space: Any, mock_app: Callable[..., MockApp]
) -> None:
    space, token = make_space("Echo")
    app = mock_app(hub, [("Echo", token), ("Nope", "sh_whatever")], "--delay", "0")

    assert app.wait(15) == 2
    out = app.output()
    assert 'The hub refused space "Nope"' in out, out
    assert "[Echo] stopped" in out  # the good space is let go cleanly, not left behind
    assert space_status(hub, space.slug)["connected"] is False


def test_it_stops_when_the_token_is_rotated_under_it(
    hub: Daphne, make_space: Any, mock_app: Callable[..., MockApp]
) -> None:
    from tests.client.conftest import wait_connected

    space, token = make_space("Echo")
    app = mock_app(hub, [("Echo", token)], "--delay", "0")
    wait_connected(hub, space.slug)

    space.rotate_token()

    assert app.wait(15) == 2
    assert 'The hub refused space "Echo"' in app.output()

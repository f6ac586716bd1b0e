"""Shared fixtures: personas (alice submits, bob is another user, staff sees all), spaces, live hubs."""

import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model

from tests import settings as test_settings
from tests.live import Daphne, running_hubs


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Browser tests last: while Playwright runs, its event loop occupies the main thread."""
    items.sort(key=lambda item: "/tests/browser/" in str(item.path))


needs_services = pytest.mark.skipif(
    not (test_settings.HAVE_POSTGRES and test_settings.HAVE_REDIS),
    reason="needs PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379 (see README)",
)


@pytest.fixture
def alice(db: Any) -> Any:
    return get_user_model().objects.create_user("alice", "alice@example.com", "alice-password")


@pytest.fixture
def bob(db: Any) -> Any:
    return get_user_model().objects.create_user("bob", "bob@example.com", "bob-password")


@pytest.fixture
def staff(db: Any) -> Any:
    return get_user_model().objects.create_user("sam", "sam@example.com", "sam-password", is_staff=True)


@pytest.fixture
def make_space(db: Any) -> Any:
    """make_space(name="Echo", **fields) -> (space, token)."""
    from spaces.models import Space

    def make(name: str = "Echo", **fields: Any) -> tuple[Space, str]:
        space = Space.objects.create(name=name, title=fields.pop("title", name), **fields)
        return space, space.rotate_token()

    return make


@pytest.fixture
def hubs(request: pytest.FixtureRequest, tmp_path: Path, transactional_db: Any) -> Iterator[list[Daphne]]:
    """Live daphne processes (2 unless the test is marked `pytest.mark.hubs(n)`)."""
    if not (test_settings.HAVE_POSTGRES and test_settings.HAVE_REDIS):
        pytest.skip("needs PostgreSQL and Redis (see README)")
    marker = request.node.get_closest_marker("hubs")
    count = marker.args[0] if marker else 2
    with running_hubs(tmp_path, count) as started:
        yield started
    for hub in started:
        log = hub.log()
        assert "Traceback" not in log, f"{hub.name} logged an exception:\n{log[-4000:]}"


@pytest.fixture
def hub(hubs: list[Daphne]) -> Daphne:
    return hubs[0]


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: Any, django_db_blocker: Any) -> Iterator[None]:
    """Drop the test database cleanly: end sessions left by worker threads and killed daphnes."""
    yield
    from django.db import connection

    if connection.vendor == "postgresql":
        with django_db_blocker.unblock(), connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )


@pytest.fixture(autouse=True)
def fresh_rate_limits() -> Iterator[None]:
    """Rate-limit counters live in the cache (Redis in tests): start every test with none."""
    from django.core.cache import cache

    if test_settings.HAVE_REDIS:
        _clear_prefixed(cache)  # not FLUSHDB: other test runs may share this Redis database
    else:
        cache.clear()
    yield


def _clear_prefixed(cache: Any) -> None:
    from django.conf import settings

    prefix = settings.CACHES["default"].get("KEY_PREFIX", "")
    client = cache._cache.get_client(write=True)
    keys = list(client.scan_iter(f"{prefix}:*"))
    if keys:
        client.delete(*keys)


@pytest.fixture(autouse=True)
def fresh_connection_pool_after_async_tests(request: pytest.FixtureRequest) -> Iterator[None]:
    """Give back the pool connections an in-process consumer test left in its event loop's threads.

    channels' test communicators patch `channels.db.close_old_connections` to a no-op while they
    wait (so that TestCase transactions survive), so `database_sync_to_async` calls made meanwhile
    keep their pooled connection in a worker thread of the test's event loop, which ends with the
    test. In the hub nothing patches it; here the pool would run dry after some dozens of tests.
    """
    yield
    if not inspect.iscoroutinefunction(getattr(request, "function", None)):
        return
    from django.db import connections

    for conn in connections.all(initialized_only=True):
        if getattr(conn, "pool", None) is not None:
            conn.close()
            conn.close_pool()  # the next connect opens a fresh pool; the stranded ones close with their threads


@pytest.fixture(autouse=True)
def default_language_after_each_test() -> Iterator[None]:
    """LocaleMiddleware leaves the last request's language active in the test thread: reset it."""
    yield
    from django.conf import settings
    from django.utils import translation

    translation.activate(settings.LANGUAGE_CODE)

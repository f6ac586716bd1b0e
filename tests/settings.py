"""Test settings: the real PostgreSQL and Redis when they answer on this machine.

The suite runs against PostgreSQL and the Redis channel layer when they answer (CI
always, with SPACEHUB_REQUIRE_SERVICES=1, which makes their absence an error). On a
machine without them it falls back to SQLite and the in-memory layer, and the tests
that need the real services skip with the reason (see the README for installing them).
"""

import os
import socket
import tempfile

os.environ.setdefault("DEBUG", "0")
os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production")

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/spacehub")
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
REQUIRE = os.environ.get("SPACEHUB_REQUIRE_SERVICES") == "1"


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


HAVE_POSTGRES = _answers("127.0.0.1", 5432)
HAVE_REDIS = _answers("127.0.0.1", 6379)
if REQUIRE and not (HAVE_POSTGRES and HAVE_REDIS):
    raise RuntimeError("SPACEHUB_REQUIRE_SERVICES=1 but PostgreSQL (5432) or Redis (6379) does not answer.")

if HAVE_POSTGRES and "DATABASE_URL" not in os.environ:
    os.environ["DATABASE_URL"] = TEST_DATABASE_URL
if HAVE_REDIS and "REDIS_URL" not in os.environ:
    os.environ["REDIS_URL"] = TEST_REDIS_URL
os.environ.setdefault("CHANNEL_LAYER_PREFIX", f"spacehub-test-{os.getpid()}")
os.environ.setdefault("CACHE_KEY_PREFIX", f"spacehub-test-{os.getpid()}")
os.environ.setdefault("MEDIA_ROOT", tempfile.mkdtemp(prefix="spacehub-media-"))
os.environ.setdefault("STATIC_ROOT", tempfile.mkdtemp(prefix="spacehub-static-"))

from spacehub.settings import *  # noqa: E402, F403

# Fast hashing for test users; the default hashers stay available for users that live daphne
# processes (which run spacehub.settings) must log in.
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.MD5PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}  # noqa: F405

if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":  # noqa: F405
    # One test database per run, so that runs side by side (two checkouts, CI) never share one.
    DATABASES["default"]["TEST"] = {"NAME": f"test_spacehub_{os.getpid()}"}  # noqa: F405

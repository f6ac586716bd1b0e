"""The hub as operators run it (spacehub.settings), with the per-user submit rate lifted.

RELAY_SUBMITS_PER_MINUTE (30 a user by default, read with getattr, not from the environment) would
refuse a benchmark's requests after the first 30 of each user in a minute. The limit's check still
runs on every submit: only its number changes. Nothing else differs.
"""

from spacehub.settings import *  # noqa: F403

RELAY_SUBMITS_PER_MINUTE = 1_000_000

from typing import Any

from relay import queue
from relay.events import APP_REVOKED, Outcome, publish_sync
from spaces.models import Space


def revoke_app(sender: Any, space: Space, **kwargs: Any) -> None:
    """A new token was made: the app connected with the old one is disconnected (4401)."""
    outcome = Outcome()
    for channel in queue.live_leases(space.pk).values_list("channel_name", flat=True):
        outcome.to_app(channel, {"type": APP_REVOKED})
    publish_sync(outcome)

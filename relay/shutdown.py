"""A graceful stop waits for the app consumers' clean-up (release the lease, requeue the request in flight).

On SIGTERM daphne cancels its consumers and waits with `asyncio.gather`, which gives up at the first
cancelled one (and its loop raises KeyError at a connection that has no application yet, leaving the
rest running): the reactor would stop while consumers still release their leases, and those apps would
wait for their leases to lapse (20 s) before registering on another process. So the app consumers
enrol their tasks here, and a "before shutdown" trigger of the reactor cancels and waits for all.
"""

import asyncio
import logging
import sys

log = logging.getLogger("relay.shutdown")

CLEANUP_SECONDS = 10.0

_tasks: set[asyncio.Task[None]] = set()
_hooked = False


def enrol() -> None:
    """Make a graceful stop of this process wait for the current task (an app consumer) to end."""
    global _hooked
    task = asyncio.current_task()
    if task is None:
        return
    _tasks.add(task)  # type: ignore[arg-type]
    task.add_done_callback(_tasks.discard)
    reactor = sys.modules.get("twisted.internet.reactor")  # only under daphne; tests run consumers without it
    if reactor is not None and not _hooked:
        _hooked = True
        reactor.addSystemEventTrigger("before", "shutdown", _wait_for_cleanups)  # type: ignore[attr-defined]


def _wait_for_cleanups() -> object:
    from twisted.internet import defer

    pending = [task for task in _tasks if not task.done()]
    if not pending:
        return None
    log.info("stopping %d app connections", len(pending))
    # Cancel them here too: daphne's own pass stops at the first connection that has no application yet.
    for task in pending:
        if not task.cancelling():
            task.cancel()
    # asyncio.wait, unlike gather, waits for every task whether it was cancelled or not.
    return defer.Deferred.fromFuture(asyncio.ensure_future(asyncio.wait(pending, timeout=CLEANUP_SECONDS)))

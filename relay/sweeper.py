"""A per-process periodic sweep, started on first use (daphne has no lifespan hooks).

Every process runs one; the sweep is idempotent, so N processes racing on the
same rows are safe (each change is a conditional UPDATE). `manage.py relay_sweep`
runs the same pass from cron or a process manager.
"""

import asyncio
import logging
import random

from relay import queue
from relay.db import db_call
from relay.events import publish

log = logging.getLogger("relay.sweeper")

INTERVAL_SECONDS = 5.0

_task: asyncio.Task[None] | None = None


def ensure_running() -> None:
    global _task
    if _task is None or _task.done() or _task.get_loop() is not asyncio.get_running_loop():
        _task = asyncio.get_running_loop().create_task(_loop())


async def sweep_once() -> None:
    outcome = await db_call(queue.sweep)()
    await publish(outcome)


async def _loop() -> None:
    while True:
        # Jitter spreads N processes' sweeps apart.
        await asyncio.sleep(INTERVAL_SECONDS * random.uniform(0.8, 1.2))
        try:
            await sweep_once()
        except Exception:
            log.exception("relay sweep failed")

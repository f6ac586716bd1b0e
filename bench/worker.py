"""What every bench worker process shares: its config file, a stop signal, its CPU time, its output."""

import asyncio
import json
import resource
import signal
import sys
import time
from pathlib import Path
from typing import Any


def config() -> dict[str, Any]:
    return json.loads(Path(sys.argv[1]).read_text())


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def ready() -> None:
    print("READY", flush=True)


def stop_event() -> asyncio.Event:
    """Set on SIGTERM or SIGINT: the worker closes its sockets cleanly and writes its output."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def sleep_until(when: float) -> None:
    delay = when - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


def write(cfg: dict[str, Any], data: dict[str, Any]) -> None:
    Path(cfg["out"]).write_text(json.dumps(data))

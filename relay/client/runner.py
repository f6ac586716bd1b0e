"""Serving one or several spaces from one process, with SIGINT/SIGTERM for a graceful stop."""

import asyncio
import logging
import signal
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from relay.client.log import LOGGER, setup_if_unconfigured

if TYPE_CHECKING:  # app.py imports this module for App.run()
    from relay.client.app import App

log = logging.getLogger(LOGGER)


def run_apps(apps: "Sequence[App]") -> None:
    """Serve every app (one connection each) until SIGINT/SIGTERM.

    The first signal stops taking requests and lets those in flight finish (each app's
    `grace`); a second one gives them up at once. Raises `CredentialsRefused` if the hub
    refused any space's token, after stopping the others.
    """
    setup_if_unconfigured()
    try:
        asyncio.run(serve_apps(apps))
    except KeyboardInterrupt:  # where signal handlers cannot be installed (Windows)
        log.info("interrupted")


async def serve_apps(apps: "Sequence[App]", *, handle_signals: bool = True) -> None:
    """`run_apps` inside a running event loop (signals are handled only from the main thread)."""
    if not apps:
        raise ValueError("No app to run.")
    spaces = [(app.url, app.space) for app in apps]
    if len(set(spaces)) != len(spaces):
        raise ValueError("Each space may be served once per process: the hub accepts one app per space.")
    loop = asyncio.get_running_loop()
    stopping = False

    def on_signal(sig: signal.Signals) -> None:
        nonlocal stopping
        if stopping:
            log.warning("%s again: giving up the requests in flight (the hub requeues them)", sig.name)
            for app in apps:
                app.stop(now=True)
            return
        stopping = True
        grace = max(app.grace for app in apps)
        log.info(
            "%s: stopping; a request in flight may finish (up to %.3g s, %s again to stop now)",
            sig.name,
            grace,
            sig.name,
        )
        for app in apps:
            app.stop()

    installed: list[signal.Signals] = []
    if handle_signals and threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, on_signal, sig)
                installed.append(sig)
            except (NotImplementedError, RuntimeError):
                pass
    tasks = [asyncio.create_task(app.serve(), name=f"spacehub-{app.space}") for app in apps]
    try:
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        failed = [task for task in done if not task.cancelled() and task.exception() is not None]
        if failed:
            for app in apps:
                app.stop()
            await asyncio.gather(*pending, return_exceptions=True)
            raise failed[0].exception()  # type: ignore[misc]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for sig in installed:
            loop.remove_signal_handler(sig)

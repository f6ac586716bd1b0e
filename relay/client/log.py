"""Logs a person wants to read: one line per request, colours on a terminal only.

The client logs to the `relay.client` logger (frames to `relay.client.frames`, at
DEBUG). A program that configures logging itself keeps full control; `setup()` is
what the mock app and `App.run()` use when nothing is configured.
"""

import logging
import os
import sys
import time
from typing import IO, Any

LOGGER = "relay.client"
FRAMES_LOGGER = "relay.client.frames"

RESET = "\033[0m"
COLOURS = {"green": "\033[32m", "red": "\033[31m", "yellow": "\033[33m", "dim": "\033[2m", "bold": "\033[1m"}
OUTCOME_COLOURS = {"succeeded": "green", "failed": "red"}  # anything else (cancelled, timed out ...) is yellow


def use_colour(stream: IO[str] | Any) -> bool:
    """Colours only on a terminal, and never when NO_COLOR is set (https://no-color.org)."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


class Formatter(logging.Formatter):
    """`12:00:03 [Echo] request 3f2a... succeeded in 1.2s`, coloured when `colour` is on.

    A record may carry `outcome` (extra=...): that word of the message gets the outcome's colour.
    """

    def __init__(self, colour: bool) -> None:
        super().__init__()
        self.colour = colour

    def paint(self, text: str, colour: str) -> str:
        return f"{COLOURS[colour]}{text}{RESET}" if self.colour else text

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        outcome = getattr(record, "outcome", None)
        if outcome and self.colour:
            message = message.replace(outcome, self.paint(outcome, OUTCOME_COLOURS.get(outcome, "yellow")), 1)
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        if record.levelno >= logging.ERROR:
            line = f"{self.paint(stamp, 'dim')} {self.paint('error:', 'red')} {message}"
        elif record.levelno >= logging.WARNING:
            line = f"{self.paint(stamp, 'dim')} {self.paint('warning:', 'yellow')} {message}"
        elif record.levelno >= logging.INFO:
            line = f"{self.paint(stamp, 'dim')} {message}"
        else:  # frames and other chatter: dimmed so the request lines stand out
            line = self.paint(f"{stamp} {message}", "dim")
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def setup(verbose: bool = False, stream: IO[str] | None = None) -> logging.Handler:
    """Send the client's logs to `stream` (stderr): INFO and up, or every frame with `verbose`."""
    stream = stream if stream is not None else sys.stderr
    logger = logging.getLogger(LOGGER)
    for old in list(logger.handlers):
        if getattr(old, "_relay_client", False):
            logger.removeHandler(old)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(Formatter(use_colour(stream)))
    handler._relay_client = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    logging.getLogger(FRAMES_LOGGER).setLevel(logging.DEBUG if verbose else logging.INFO)
    logger.propagate = False
    return handler


def setup_if_unconfigured() -> None:
    """`setup()` unless the program already configured logging (its own handlers win)."""
    if not logging.getLogger(LOGGER).handlers and not logging.getLogger().handlers:
        setup()

"""Readable logs: one line per request, colours on a terminal only, NO_COLOR respected."""

import io
import logging
from collections.abc import Iterator

import pytest

from relay.client import log as client_log


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def restore_logger() -> Iterator[None]:
    logger = logging.getLogger(client_log.LOGGER)
    handlers, level, propagate = list(logger.handlers), logger.level, logger.propagate
    yield
    logger.handlers, logger.level, logger.propagate = handlers, level, propagate
    logging.getLogger(client_log.FRAMES_LOGGER).setLevel(logging.NOTSET)


def request_line(outcome: str = "succeeded") -> None:
    logging.getLogger(client_log.LOGGER).info("[Echo] request 1234 %s in 1.20s", outcome, extra={"outcome": outcome})


def test_it_colours_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    stream = Terminal()
    client_log.setup(stream=stream)

    request_line("succeeded")
    request_line("failed")

    out = stream.getvalue()
    assert "\033[32msucceeded\033[0m" in out
    assert "\033[31mfailed\033[0m" in out


def test_it_writes_plain_text_into_a_pipe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    stream = io.StringIO()
    client_log.setup(stream=stream)

    request_line()
    logging.getLogger(client_log.LOGGER).warning("[Echo] hub unreachable")

    lines = stream.getvalue().splitlines()
    assert "\033" not in stream.getvalue()
    assert lines[0].endswith(" [Echo] request 1234 succeeded in 1.20s")
    assert lines[1].endswith(" warning: [Echo] hub unreachable")


def test_it_respects_no_color_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    stream = Terminal()
    client_log.setup(stream=stream)

    request_line()

    assert "\033" not in stream.getvalue()


def test_frames_show_only_when_verbose() -> None:
    quiet, loud = io.StringIO(), io.StringIO()
    client_log.setup(stream=quiet)
    logging.getLogger(client_log.FRAMES_LOGGER).debug("[Echo] -> {}")
    client_log.setup(verbose=True, stream=loud)
    logging.getLogger(client_log.FRAMES_LOGGER).debug("[Echo] -> {}")

    assert quiet.getvalue() == ""
    assert "[Echo] -> {}" in loud.getvalue()
    assert len(logging.getLogger(client_log.LOGGER).handlers) == 1  # setup() again replaces, never stacks

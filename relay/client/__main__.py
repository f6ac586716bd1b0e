"""The mock remote app: `python -m relay.client --hub URL --space NAME --token TOKEN [--verbose]`.

Exit codes: 0 after SIGINT/SIGTERM, 2 when the hub refuses a space or token (or the
command line is wrong), 1 on anything unexpected.
"""

import argparse
import logging
import os
import sys

from relay.client import log as client_log
from relay.client.app import VERSION, App
from relay.client.errors import CredentialsRefused
from relay.client.mock import make_handler, parse_delay
from relay.client.runner import run_apps

EXIT_REFUSED = 2
DEFAULT_HUB = "http://127.0.0.1:8000"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m relay.client",
        description="The SpaceHub mock app: serves one or more spaces with a pretend model that echoes "
        "the prompt, describes the files it received, and streams its answer word by word. "
        "A prompt starting with !fail makes it answer with an error.",
        epilog="Several spaces: --space A --token TA --space B --token TB (paired in order). "
        "With one space the token may come from SPACEHUB_TOKEN instead.",
    )
    p.add_argument(
        "--hub",
        default=os.environ.get("SPACEHUB_HUB") or DEFAULT_HUB,
        help=f"the hub's address (default: $SPACEHUB_HUB or {DEFAULT_HUB})",
    )
    p.add_argument("--space", action="append", default=[], required=True, help="a space's name (repeatable)")
    p.add_argument("--token", action="append", default=[], help="the space's app token (repeatable)")
    p.add_argument("--delay", default="1-5", type=_delay, help="seconds per request: N or MIN-MAX (default 1-5)")
    p.add_argument("--grace", default=30.0, type=float, help="seconds a stopping app lets a request finish (30)")
    p.add_argument("--verbose", "-v", action="store_true", help="log every frame")
    p.add_argument("--version", action="version", version=f"spacehub-client {VERSION}")
    return p


def _delay(text: str) -> tuple[float, float]:
    try:
        return parse_delay(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def pairs(spaces: list[str], tokens: list[str], env_token: str | None) -> list[tuple[str, str]]:
    """Pair --space and --token in order; one space may take its token from SPACEHUB_TOKEN."""
    if not tokens and len(spaces) == 1 and env_token:
        tokens = [env_token]
    if len(tokens) != len(spaces):
        raise ValueError(
            f"{len(spaces)} --space but {len(tokens)} --token: give one token per space, in the same order"
            + (" (or set SPACEHUB_TOKEN for a single space)." if len(spaces) == 1 else ".")
        )
    return list(zip(spaces, tokens, strict=True))


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    try:
        served = pairs(args.space, args.token, os.environ.get("SPACEHUB_TOKEN"))
        handler = make_handler(args.delay)
        apps = [App(args.hub, space, token, handler, grace=args.grace) for space, token in served]
    except ValueError as exc:
        p.error(str(exc))
    client_log.setup(verbose=args.verbose)
    try:
        run_apps(apps)
    except CredentialsRefused:
        return EXIT_REFUSED  # the app has logged why
    except Exception:
        logging.getLogger(client_log.LOGGER).exception("the mock app crashed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

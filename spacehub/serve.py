"""`python -m spacehub.serve <daphne's arguments> spacehub.asgi:application`: daphne, plus two refusals.

The same server and arguments as `daphne`, with what the hub promises and bare daphne does not give:

- A WebSocket message over `--websocket-max-message-size` is refused with close code 1009. daphne
  leaves autobahn's `failByDrop` on, so such a connection was dropped and the peer saw 1006.
- An HTTP request body over `MAX_BODY_MB` is refused with 413 `too_large` before it is read: at once
  for a declared `Content-Length`, as soon as its running size passes the cap for a chunked one, and
  the connection is closed. daphne starts the application only after Twisted received the whole body,
  so the view's per-space limit (which stays) could only answer after the last byte.
"""

import json
import logging
import os
from typing import Any

from daphne.cli import CommandLineInterface  # first: daphne.server installs the asyncio reactor
from daphne.http_protocol import HTTPFactory, WebRequest
from daphne.server import Server
from django.conf import settings

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "spacehub.settings")

log = logging.getLogger("spacehub.serve")


class CappedRequest(WebRequest):
    """daphne's request, refusing a body over the server's cap before the application sees any of it.

    Twisted calls `gotLength` once the headers are in (the declared length, None for a chunked body)
    and `handleContentChunk` with each piece of the body as it arrives; daphne creates the application
    only when the body is complete, from `process`.
    """

    refused = False
    received = 0

    def gotLength(self, length: int | None) -> None:
        if length is not None and length > self.server.max_body_bytes:
            # Twisted answers `Expect: 100-continue` right after this call: the client must hear 413 instead.
            self.requestHeaders.removeHeader(b"Expect")
            self.refuse(f"a declared body of {length} bytes")
            return
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        if self.refused:
            return
        self.received += len(data)
        if self.received > self.server.max_body_bytes:
            self.refuse(f"a chunked body past {self.received} bytes")
            return
        super().handleContentChunk(data)

    def process(self) -> Any:
        """Never start the application for a refused request (a chunked body may end in the read that passed
        the cap, and Twisted then completes the request while the connection closes)."""
        return None if self.refused else super().process()

    def refuse(self, what: str) -> None:
        """Answer 413 as PROTOCOL.md section 2 words refusals, then close: the rest of the body is never read.

        Written straight to the transport, as Twisted answers its own 400s: the request line has not been
        handed to the request yet, so its own response methods would not write a valid status line.
        """
        self.refused = True
        mb = self.server.max_body_bytes // (1024 * 1024)
        message = f"The request body is larger than this hub accepts ({mb} MB)."
        body = json.dumps({"error": {"code": "too_large", "message": message}}).encode()
        head = (
            "HTTP/1.1 413 Content Too Large\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        log.warning("413 too_large: %s from %s (MAX_BODY_MB=%d)", what, getattr(self.client, "host", self.client), mb)
        self.channel.transport.write(head.encode() + body)
        self.channel.loseConnection()


class CappedHTTPFactory(HTTPFactory):
    """daphne's HTTP factory, whose connections build `CappedRequest`s instead of daphne's `WebRequest`s."""

    def buildProtocol(self, addr: Any) -> Any:
        protocol = super().buildProtocol(addr)
        protocol.requestFactory = CappedRequest  # daphne's buildProtocol has just set WebRequest
        return protocol


class HubServer(Server):
    """daphne's server with the 1009 close and the body cap.

    `Server.run` builds both factories, starts listening and runs the reactor in one method. It calls
    `listen_success` for each endpoint as soon as the endpoint listens, before the reactor runs and so
    before the first connection: there the factories exist and can still be adjusted, without copying run().
    """

    max_body_bytes: int

    def listen_success(self, port: Any) -> None:
        self.max_body_bytes = settings.MAX_BODY_MB * 1024 * 1024
        # autobahn copies the factory's options into each protocol as its connection is made. Without
        # failByDrop, failing a connection (a message too big, invalid UTF-8) sends the close code first.
        # setProtocolOptions resets allowNullOrigin to False unless it is given: keep daphne's choice.
        factory = self.ws_factory
        factory.setProtocolOptions(failByDrop=False, allowNullOrigin=factory.allowNullOrigin)
        # The listening port keeps this very factory object, so it changes class rather than being replaced.
        self.http_factory.__class__ = CappedHTTPFactory
        super().listen_success(port)


class HubCommandLineInterface(CommandLineInterface):
    """daphne's command line, running `HubServer`."""

    description = "SpaceHub's daphne: refuses oversized WebSocket messages (1009) and bodies (413)"
    server_class = HubServer


if __name__ == "__main__":
    HubCommandLineInterface.entrypoint()

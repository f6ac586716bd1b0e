"""A remote app for the browser tests: answers every request with a small PNG and some text."""

import struct
import sys
import zlib

from relay.client import App


def png(width: int = 40, height: int = 20) -> bytes:
    """A solid orange PNG, made with the standard library."""
    row = b"\x00" + b"\xff\x80\x00" * width
    raw = zlib.compress(row * height)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def main() -> None:
    hub, space, token = sys.argv[1:4]
    app = App(hub=hub, space=space, token=token)

    @app.handler
    async def draw(request):  # type: ignore[no-untyped-def]
        return {"text": "Here is your picture.", "files": [("picture.png", png(), "image/png")]}

    app.run()


if __name__ == "__main__":
    main()

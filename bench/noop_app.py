"""No-op remote apps: register for spaces on /ws/apps/ and answer each request with a result at once.

`python -m bench.noop_app CONFIG` with {"apps": [{"url", "space", "token"}], "out"}. Prints READY once
every app is registered; on SIGTERM closes cleanly (the hub releases the leases) and writes, per
request, when it arrived and when the answer left (time.monotonic, one clock for all processes).
"""

import asyncio
import json
import time
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bench import worker


class Apps:
    def __init__(self) -> None:
        self.log: list[tuple[str, float, float]] = []
        self.live: set[ClientConnection] = set()
        self.closing = False

    async def run(self, spec: dict[str, Any], registered: asyncio.Event) -> None:
        while not self.closing:
            try:
                async with connect(f"{spec['url']}/ws/apps/", max_size=2**20, open_timeout=30) as ws:
                    await ws.send(json.dumps({"type": "register", "space": spec["space"], "token": spec["token"]}))
                    reply = json.loads(await ws.recv())
                    if reply.get("type") != "registered":  # a lease of an earlier run still lives: retry
                        await asyncio.sleep(1)
                        continue
                    self.live.add(ws)
                    registered.set()
                    await self.answer(ws)
            except (OSError, ConnectionClosed, TimeoutError):
                await asyncio.sleep(0.5)

    async def answer(self, ws: ClientConnection) -> None:
        async for raw in ws:
            received = time.monotonic()
            frame = json.loads(raw)
            if frame.get("type") == "request":
                await ws.send(json.dumps({"type": "result", "id": frame["id"], "outputs": {"text": "ok"}}))
                self.log.append((frame["id"], received, time.monotonic()))

    async def close(self) -> None:
        self.closing = True
        await asyncio.gather(*(ws.close() for ws in self.live), return_exceptions=True)


async def main() -> None:
    cfg = worker.config()
    stop = worker.stop_event()
    apps = Apps()
    gate = asyncio.Semaphore(20)  # register in small waves, as apps coming online would

    async def start(spec: dict[str, Any]) -> asyncio.Task[None]:
        registered = asyncio.Event()
        async with gate:
            task = asyncio.create_task(apps.run(spec, registered))
            await registered.wait()
        return task

    tasks = await asyncio.gather(*(start(spec) for spec in cfg["apps"]))
    cpu0 = worker.cpu_seconds()
    worker.ready()
    await stop.wait()
    cpu = worker.cpu_seconds() - cpu0
    await apps.close()
    await asyncio.wait(tasks, timeout=10)
    worker.write(cfg, {"log": apps.log, "cpu_seconds": cpu})


if __name__ == "__main__":
    asyncio.run(main())

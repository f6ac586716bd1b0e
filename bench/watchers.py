"""Idle space watchers: many /ws/spaces/<slug>/ sockets, as many open space pages would hold.

`python -m bench.watchers CONFIG` with {"url", "origin", "slug", "count", "out"}. Prints READY once
every socket has its first `space` frame; on SIGTERM writes, per socket, when each later frame
arrived and the queue size it carried.
"""

import asyncio
import json
import time

from websockets.asyncio.client import ClientConnection, connect

from bench import worker


async def main() -> None:
    cfg = worker.config()
    stop = worker.stop_event()
    frames: list[list[tuple[float, int]]] = [[] for _ in range(cfg["count"])]
    sockets: list[ClientConnection] = []
    gate = asyncio.Semaphore(10)
    failures: list[str] = []

    async def watch(i: int, opened: asyncio.Event) -> None:
        for attempt in range(5):  # a page's script reconnects too; daphne drops handshakes after 5 s
            try:
                async with gate:
                    ws = await connect(
                        f"{cfg['url']}/ws/spaces/{cfg['slug']}/",
                        additional_headers={"Origin": cfg["origin"]},
                        ping_interval=None,
                        open_timeout=30,
                    )
                    json.loads(await ws.recv())
                break
            except Exception as exc:
                failures.append(f"attempt {attempt + 1}: {type(exc).__name__}: {exc}"[:200])
                await asyncio.sleep(0.5)
        else:
            opened.set()
            return
        sockets.append(ws)
        opened.set()
        try:
            async for raw in ws:
                frames[i].append((time.monotonic(), json.loads(raw)["queue_size"]))
        except Exception as exc:
            failures.append(f"after open: {type(exc).__name__}: {exc}"[:200])

    events = [asyncio.Event() for _ in range(cfg["count"])]
    tasks = [asyncio.create_task(watch(i, e)) for i, e in enumerate(events)]
    await asyncio.gather(*(e.wait() for e in events))
    worker.ready()
    await stop.wait()
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    await asyncio.wait(tasks, timeout=10)
    worker.write(cfg, {"frames": frames, "failures": failures, "open": len(sockets)})


if __name__ == "__main__":
    asyncio.run(main())

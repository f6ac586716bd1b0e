"""SpaceHub clients: log-in sessions that submit over HTTP and wait for the final frame on /ws/requests/<id>/.

`python -m bench.load CONFIG` with {"clients": [{"base", "ws", "cookie", "csrf", "slug"}], "out", and
either "n" and "warmup" (one client, requests one after another) or "start_at", "measure_from" and
"end_at" (every client in a loop until end_at)}. Writes every sample:
[id, started, submitted (HTTP answered), stream open, final frame, error].
"""

import asyncio
import json
import time
from typing import Any

import aiohttp
from websockets.asyncio.client import connect

from bench import worker

FINAL = {"succeeded", "failed", "timed_out", "cancelled"}
Sample = tuple[str, float, float, float, float, str]


class Client:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.http = aiohttp.ClientSession(
            cookie_jar=aiohttp.DummyCookieJar(),
            connector=aiohttp.TCPConnector(limit=1),
            headers={"Cookie": spec["cookie"], "X-CSRFToken": spec["csrf"], "Accept": "application/json"},
        )
        self.ws_headers = {"Cookie": spec["cookie"], "Origin": spec["base"]}

    async def one(self) -> Sample:
        """One request, end to end."""
        started = time.monotonic()
        url = f"{self.spec['base']}/spaces/{self.spec['slug']}/requests/"
        async with self.http.post(url, data={"prompt": "hello"}) as resp:
            body = await resp.read()
            if resp.status != 201:
                return ("", started, time.monotonic(), 0.0, 0.0, f"http {resp.status}: {body[:120]!r}")
        submitted = time.monotonic()
        answer = json.loads(body)
        async with connect(
            f"{self.spec['ws']}{answer['stream']}", additional_headers=self.ws_headers, ping_interval=None
        ) as ws:
            opened = time.monotonic()
            async for raw in ws:
                frame = json.loads(raw)
                kind = frame["type"]
                if kind in ("result", "error") or (kind == "state" and frame["request"]["status"] in FINAL):
                    error = "" if kind == "result" or frame.get("request", {}).get("status") == "succeeded" else raw
                    return (answer["id"], started, submitted, opened, time.monotonic(), str(error)[:200])
        return (answer["id"], started, submitted, opened, time.monotonic(), "closed before the final frame")

    async def close(self) -> None:
        await self.http.close()


async def main() -> None:
    cfg = worker.config()
    clients = [Client(spec) for spec in cfg["clients"]]
    samples: list[Sample] = []
    errors: list[str] = []

    async def guarded(client: Client) -> None:
        try:
            sample = await client.one()
        except Exception as exc:  # a refused socket, a reset: count it, keep going
            errors.append(f"{type(exc).__name__}: {exc}"[:200])
            await asyncio.sleep(0.01)
            return
        samples.append(sample)
        if sample[5]:
            await asyncio.sleep(0.01)

    if "n" in cfg:
        for _ in range(cfg.get("warmup", 0)):
            await guarded(clients[0])
        samples.clear()
        cpu0, t0 = worker.cpu_seconds(), time.monotonic()
        for _ in range(cfg["n"]):
            await guarded(clients[0])
        cpu, wall = worker.cpu_seconds() - cpu0, time.monotonic() - t0
    else:
        cpu = wall = 0.0

        async def loop(client: Client) -> None:
            while time.monotonic() < cfg["end_at"]:
                await guarded(client)

        await worker.sleep_until(cfg["start_at"])
        tasks = [asyncio.create_task(loop(c)) for c in clients]
        await worker.sleep_until(cfg["measure_from"])
        cpu0 = worker.cpu_seconds()
        await worker.sleep_until(cfg["end_at"])
        cpu, wall = worker.cpu_seconds() - cpu0, cfg["end_at"] - cfg["measure_from"]
        await asyncio.gather(*tasks)
    await asyncio.gather(*(c.close() for c in clients))
    worker.write(cfg, {"samples": samples, "errors": errors, "cpu_seconds": cpu, "wall_seconds": wall})


if __name__ == "__main__":
    asyncio.run(main())

"""The floor: what the machine allows without SpaceHub.

- `echo-server PORT` / `echo-client CONFIG`: a raw `websockets` echo round trip, server and client in
  separate processes (a frame the size of a hub `request` frame).
- `relay-server PORT`: the same wire shape as the hub (HTTP submit, /ws/apps/, /ws/requests/<id>/)
  relayed in memory by one aiohttp process: no Django, no database, no channel layer. Driven by the
  same no-op app and clients as the hub, it is the floor of the whole end-to-end path.
"""

import asyncio
import json
import sys
import time
import uuid
from typing import Any

from bench import worker

FRAME = json.dumps(
    {
        "type": "request",
        "id": str(uuid.uuid4()),
        "attempt": 1,
        "deadline": "2026-01-01T12:02:00.000000Z",
        "inputs": {"prompt": "hello"},
    }
)


async def echo_server(port: int) -> None:
    from websockets.asyncio.server import ServerConnection, serve

    async def echo(ws: ServerConnection) -> None:
        async for message in ws:
            await ws.send(message)

    stop = worker.stop_event()
    async with serve(echo, "127.0.0.1", port):
        worker.ready()
        await stop.wait()


async def echo_client() -> None:
    from websockets.asyncio.client import connect

    cfg = worker.config()
    times: list[float] = []
    async with connect(cfg["url"]) as ws:
        for i in range(cfg["warmup"] + cfg["n"]):
            started = time.monotonic()
            await ws.send(FRAME)
            await ws.recv()
            if i >= cfg["warmup"]:
                times.append(time.monotonic() - started)
    worker.write(cfg, {"times": times})


async def relay_server(port: int) -> None:
    from aiohttp import WSMsgType, web

    apps: dict[str, web.WebSocketResponse] = {}
    requests: dict[str, dict[str, Any]] = {}

    async def submit(request: web.Request) -> web.Response:
        slug = request.match_info["slug"]
        await request.post()
        if slug not in apps:
            return web.json_response({"error": {"code": "app_not_connected"}}, status=409)
        rid = str(uuid.uuid4())
        requests[rid] = {"status": "queued", "done": asyncio.get_running_loop().create_future()}
        frame = {"type": "request", "id": rid, "attempt": 1, "deadline": None, "inputs": {"prompt": "hello"}}
        await apps[slug].send_str(json.dumps(frame))
        return web.json_response({"id": rid, "status": "queued", "stream": f"/ws/requests/{rid}/"}, status=201)

    async def stream(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        req = requests.get(request.match_info["rid"])
        if req is None:
            await ws.close(code=4403)
            return ws
        await ws.send_str(json.dumps({"type": "state", "request": {"status": req["status"]}}))
        if req["status"] == "queued":
            outputs = await req["done"]
            await ws.send_str(json.dumps({"type": "result", "outputs": outputs}))
        await ws.close()
        return ws

    async def app(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=20)
        await ws.prepare(request)
        slug = ""
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                break
            frame = json.loads(msg.data)
            if frame["type"] == "register":
                slug = frame["space"].lower().replace(" ", "-")
                apps[slug] = ws
                await ws.send_str(json.dumps({"type": "registered", "connection_id": "floor", "space": {}}))
            elif frame["type"] == "result":
                req = requests[frame["id"]]  # kept: the stream may open after the result
                req["status"] = "succeeded"
                req["done"].set_result(frame.get("outputs"))
        apps.pop(slug, None)
        return ws

    web_app = web.Application()
    web_app.router.add_post("/spaces/{slug}/requests/", submit)
    web_app.router.add_get("/ws/requests/{rid}/", stream)
    web_app.router.add_get("/ws/apps/", app)
    runner = web.AppRunner(web_app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    stop = worker.stop_event()
    worker.ready()
    await stop.wait()
    await runner.cleanup()


if __name__ == "__main__":
    command = sys.argv.pop(1)
    if command == "echo-server":
        asyncio.run(echo_server(int(sys.argv[1])))
    elif command == "echo-client":
        asyncio.run(echo_client())
    elif command == "relay-server":
        asyncio.run(relay_server(int(sys.argv[1])))
    else:
        raise SystemExit(f"unknown command {command}")

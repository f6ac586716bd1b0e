"""Gradio's queue with the same no-op: a `gr.Interface` echo, queue on, concurrency 1 per function.

- `server PORT`: the Gradio app; prints READY, stops on SIGTERM.
- `client CONFIG`: `gradio_client` in threads, one `Client` each (its documented use):
  {"url", "threads", "out"} and either "n"/"warmup" or "start_at"/"measure_from"/"end_at".
- `raw CONFIG`: the same queue through its HTTP API with aiohttp (POST /gradio_api/call/predict, then
  its server-sent events), to tell the queue's own delay from gradio_client's polling (it sleeps 50 ms
  between looks at its message queue).
"""

import asyncio
import json
import os
import signal
import sys
import threading
import time
from typing import Any

from bench import worker

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def server(port: int) -> None:
    import gradio as gr

    def echo(text: str) -> str:
        return text

    demo = gr.Interface(fn=echo, inputs="text", outputs="text", api_name="predict")
    demo.queue(default_concurrency_limit=1)
    demo.launch(server_name="127.0.0.1", server_port=port, ssr_mode=False, quiet=True, prevent_thread_lock=True)
    stopped = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopped.set())
    worker.ready()
    stopped.wait()
    demo.close()


def client() -> None:
    from gradio_client import Client

    cfg = worker.config()
    samples: list[tuple[float, float]] = []
    errors: list[str] = []
    lock = threading.Lock()

    def one(c: Any) -> None:
        started = time.monotonic()
        try:
            out = c.predict("hello", api_name="/predict")
            if out != "hello":
                raise RuntimeError(f"unexpected answer {out!r}")
        except Exception as exc:
            with lock:
                errors.append(f"{type(exc).__name__}: {exc}"[:200])
            return
        with lock:
            samples.append((started, time.monotonic()))

    clients = [Client(cfg["url"], verbose=False) for _ in range(cfg["threads"])]
    if "n" in cfg:
        for _ in range(cfg.get("warmup", 0)):
            one(clients[0])
        samples.clear()
        cpu0, t0 = worker.cpu_seconds(), time.monotonic()
        for _ in range(cfg["n"]):
            one(clients[0])
        cpu, wall = worker.cpu_seconds() - cpu0, time.monotonic() - t0
    else:

        def loop(c: Any) -> None:
            while time.monotonic() < cfg["end_at"]:
                one(c)

        time.sleep(max(0.0, cfg["start_at"] - time.monotonic()))
        threads = [threading.Thread(target=loop, args=(c,)) for c in clients]
        for t in threads:
            t.start()
        time.sleep(max(0.0, cfg["measure_from"] - time.monotonic()))
        cpu0 = worker.cpu_seconds()
        time.sleep(max(0.0, cfg["end_at"] - time.monotonic()))
        cpu, wall = worker.cpu_seconds() - cpu0, cfg["end_at"] - cfg["measure_from"]
        for t in threads:
            t.join()
    for c in clients:
        c.close()
    worker.write(cfg, {"samples": samples, "errors": errors, "cpu_seconds": cpu, "wall_seconds": wall})


async def raw() -> None:
    import aiohttp

    cfg = worker.config()
    samples: list[tuple[float, float]] = []
    errors: list[str] = []

    async def one(http: aiohttp.ClientSession) -> None:
        started = time.monotonic()
        try:
            async with http.post(f"{cfg['url']}/gradio_api/call/predict", json={"data": ["hello"]}) as resp:
                event_id = (await resp.json())["event_id"]
            async with http.get(f"{cfg['url']}/gradio_api/call/predict/{event_id}") as resp:
                event = ""
                async for line in resp.content:
                    text = line.decode().strip()
                    if text.startswith("event:"):
                        event = text[6:].strip()
                    elif text.startswith("data:") and event == "complete":
                        if json.loads(text[5:]) != ["hello"]:
                            raise RuntimeError(f"unexpected answer {text!r}")
                        break
                    elif event == "error":
                        raise RuntimeError(text)
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}"[:200])
            return
        samples.append((started, time.monotonic()))

    sessions = [aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=2)) for _ in range(cfg["threads"])]
    if "n" in cfg:
        for _ in range(cfg.get("warmup", 0)):
            await one(sessions[0])
        samples.clear()
        cpu0, t0 = worker.cpu_seconds(), time.monotonic()
        for _ in range(cfg["n"]):
            await one(sessions[0])
        cpu, wall = worker.cpu_seconds() - cpu0, time.monotonic() - t0
    else:

        async def loop(http: aiohttp.ClientSession) -> None:
            while time.monotonic() < cfg["end_at"]:
                await one(http)

        await worker.sleep_until(cfg["start_at"])
        tasks = [asyncio.create_task(loop(s)) for s in sessions]
        await worker.sleep_until(cfg["measure_from"])
        cpu0 = worker.cpu_seconds()
        await worker.sleep_until(cfg["end_at"])
        cpu, wall = worker.cpu_seconds() - cpu0, cfg["end_at"] - cfg["measure_from"]
        await asyncio.gather(*tasks)
    await asyncio.gather(*(s.close() for s in sessions))
    worker.write(cfg, {"samples": samples, "errors": errors, "cpu_seconds": cpu, "wall_seconds": wall})


if __name__ == "__main__":
    command = sys.argv.pop(1)
    if command == "server":
        server(int(sys.argv[1]))
    elif command == "client":
        client()
    elif command == "raw":
        asyncio.run(raw())
    else:
        raise SystemExit(f"unknown command {command}")

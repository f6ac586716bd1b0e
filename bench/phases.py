"""The measurements: each phase starts what it needs, drives it, and returns its figures."""

import asyncio
import json
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import hub as hubs
from bench.procs import CpuMeter, PySpy, Worker
from bench.stats import latency, percentile, profile_summary


class Stack:
    """One database behind the hub (PostgreSQL or SQLite), Redis as the channel layer."""

    def __init__(self, tmp: Path, label: str, database_url: str, spaces: int, users: int) -> None:
        self.tmp, self.label = tmp, label
        hubs.flush_redis()
        self.env = hubs.hub_env(database_url, tmp)
        made = hubs.prepare(self.env, spaces, users)
        self.spaces: list[dict[str, Any]] = made["spaces"]
        self.users: list[str] = made["users"]
        self.logins: list[dict[str, str]] = []
        self.count = 0

    def start(self, name: str, settings: str = "bench.settings_bench", **env: str) -> hubs.Daphne:
        self.count += 1
        hub = hubs.Daphne({**self.env, **env}, self.tmp / f"{self.label}-{name}.log", settings).start()
        if not self.logins:
            self.logins = hubs.login_all(hub.http, self.users)
        return hub

    def client(self, hub: hubs.Daphne, user: int, space: int) -> dict[str, Any]:
        return {"base": hub.http, "ws": hub.ws, **self.logins[user], "slug": self.spaces[space]["slug"]}

    def app(self, hub: hubs.Daphne, space: int) -> dict[str, Any]:
        return {"url": hub.ws, "space": self.spaces[space]["name"], "token": self.spaces[space]["token"]}


# --- the wire's floor ----------------------------------------------------------------------


def floor_echo(tmp: Path, n: int) -> dict[str, Any]:
    port = hubs.free_port()
    server = Worker(tmp, "floor-echo-server", ["bench.floor", "echo-server", str(port)]).wait_ready()
    cfg = {"url": f"ws://127.0.0.1:{port}", "n": n, "warmup": min(200, n)}
    out = Worker(tmp, "floor-echo-client", ["bench.floor", "echo-client"], cfg).result()
    server.stop()
    return {"round_trip": latency(out["times"])}


def floor_relay(tmp: Path, n: int, duration: float, clients: int) -> dict[str, Any]:
    """The hub's wire shape relayed in memory by one aiohttp process: same no-op app, same clients."""
    port = hubs.free_port()
    server = Worker(tmp, "floor-relay-server", ["bench.floor", "relay-server", str(port)]).wait_ready()
    base, ws = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}"
    spaces = 10
    apps = [{"url": ws, "space": f"Bench {i:03d}", "token": "-"} for i in range(spaces)]
    app = Worker(tmp, "floor-relay-apps", ["bench.noop_app"], {"apps": apps}).wait_ready()
    spec = [
        {"base": base, "ws": ws, "cookie": "", "csrf": "-", "slug": f"bench-{i % spaces:03d}"} for i in range(clients)
    ]
    seq = Worker(tmp, "floor-relay-seq", ["bench.load"], {"clients": spec[:1], "n": n, "warmup": 20}).result()
    result = {"sequential": _sequential_figures(seq, {})}
    result["concurrent"] = _concurrent(tmp, "floor-relay-conc", spec, duration, {"server": [server.pid]})[0]
    app.stop()
    server.stop()
    return result


# --- SpaceHub ------------------------------------------------------------------------------


def _sequential_figures(out: dict[str, Any], app_log: dict[str, Any]) -> dict[str, Any]:
    ok = [s for s in out["samples"] if not s[5]]
    e2e = [s[4] - s[1] for s in ok]
    figures: dict[str, Any] = {
        "end_to_end": latency(e2e),
        "requests_per_s": round(len(ok) / out["wall_seconds"], 1) if out["wall_seconds"] else None,
        "errors": len(out["samples"]) - len(ok) + len(out["errors"]),
        "error_examples": [s[5] for s in out["samples"] if s[5]][:3] + out["errors"][:3],
        "client_cpu_pct": round(100 * out["cpu_seconds"] / out["wall_seconds"], 1) if out["wall_seconds"] else None,
    }
    if app_log:
        joined = [(s, app_log[s[0]]) for s in ok if s[0] in app_log]
        figures["split"] = {
            "submit_http": latency([s[2] - s[1] for s, _ in joined]),
            "stream_open_after_submit": latency([s[3] - s[2] for s, _ in joined]),
            "submit_to_app_receives": latency([a[0] - s[1] for s, a in joined]),
            "app_answers_to_browser_receives": latency([s[4] - a[1] for s, a in joined]),
            "stream_opened_after_app_answered_pct": round(
                100 * sum(1 for s, a in joined if s[3] > a[1]) / max(len(joined), 1), 1
            ),
        }
    return figures


def sequential(
    stack: Stack,
    hub: hubs.Daphne,
    name: str,
    n: int,
    profile: Path | None = None,
    around: Any = None,
    gil: bool = False,
) -> dict[str, Any]:
    """One client, one request after another; the split from the app's timestamps.

    With `profile`, py-spy samples the hub: wall time (`--idle`), or with `gil` only the thread holding
    the GIL, which is where the process's Python CPU time goes.
    """
    app = Worker(stack.tmp, f"{name}-app", ["bench.noop_app"], {"apps": [stack.app(hub, 0)]}).wait_ready()
    spy = PySpy(hub.pid, profile, idle=not gil, gil=gil) if profile else None
    if around:
        around("start")
    warmup = 20
    meter = CpuMeter({"hub": [hub.pid], "app": [app.pid]}).start()
    out = Worker(
        stack.tmp, f"{name}-load", ["bench.load"], {"clients": [stack.client(hub, 0, 0)], "n": n, "warmup": warmup}
    )
    out = out.result()
    meter.stop()
    if around:
        around("stop")
    seconds = spy.stop() if spy else 0.0
    log = app.stop()["log"]
    figures = _sequential_figures(out, {rid: (r, a) for rid, r, a in log})
    figures["cpu_ms_per_request"] = {
        k: round(1000 * v / (n + warmup), 3) for k, v in meter.used.items() if k != "machine"
    }
    if spy and profile:
        figures["profile"] = {"file": str(profile), "summary": profile_summary(profile, seconds, spy.rate)}
    return figures


def _concurrent(
    tmp: Path,
    name: str,
    clients: list[dict[str, Any]],
    duration: float,
    meter_groups: dict[str, list[int]],
    processes: int = 2,
    on_window: Callable[[str], None] | None = None,
) -> tuple[dict[str, Any], int]:
    start_at = time.monotonic() + 2.5  # the client processes import and connect meanwhile
    measure_from = start_at + min(3.0, duration / 3)
    end_at = measure_from + duration
    loads = [
        Worker(
            tmp,
            f"{name}-load{p}",
            ["bench.load"],
            {"clients": clients[p::processes], "start_at": start_at, "measure_from": measure_from, "end_at": end_at},
        )
        for p in range(processes)
    ]
    time.sleep(max(0.0, measure_from - time.monotonic()))
    if on_window:
        on_window("start")
    meter = CpuMeter({**meter_groups, "clients": [w.pid for w in loads]}).start()
    time.sleep(max(0.0, end_at - time.monotonic()))
    cpu = meter.stop()
    if on_window:
        on_window("stop")
    outs = [w.result() for w in loads]
    samples = [s for o in outs for s in o["samples"]]
    done = [s for s in samples if not s[5] and measure_from <= s[4] <= end_at]
    errors = [s[5] for s in samples if s[5]] + [e for o in outs for e in o["errors"]]
    return {
        "clients": len(clients),
        "seconds": duration,
        "requests_per_s": round(len(done) / duration, 1),
        "end_to_end": latency([s[4] - s[1] for s in done]),
        "errors": len(errors),
        "error_examples": errors[:3],
        **cpu,
    }, len(done)


def concurrent(
    stack: Stack,
    hub_list: list[hubs.Daphne],
    name: str,
    duration: float,
    clients: int = 50,
    spaces: int = 10,
    profile: Path | None = None,
    on_window: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """`clients` users in a loop over `spaces` spaces, each with its no-op app; hubs mixed across."""
    apps = [stack.app(hub_list[j % len(hub_list)], j) for j in range(spaces)]
    app = Worker(stack.tmp, f"{name}-apps", ["bench.noop_app"], {"apps": apps}).wait_ready()
    specs = [stack.client(hub_list[(i // spaces) % len(hub_list)], i, i % spaces) for i in range(clients)]
    spy = PySpy(hub_list[0].pid, profile, idle=True) if profile else None
    groups = {f"hub{i}": [h.pid] for i, h in enumerate(hub_list)} | {"apps": [app.pid]}
    figures, done = _concurrent(stack.tmp, name, specs, duration, groups, on_window=on_window)
    seconds = spy.stop() if spy else 0.0
    app.stop()
    figures["hubs"] = len(hub_list)
    figures["hub_cpu_ms_per_request"] = round(
        sum(figures[f"hub{i}_cpu_pct"] for i in range(len(hub_list))) * 10 * duration / max(done, 1), 3
    )
    if spy and profile:
        figures["profile"] = {"file": str(profile), "summary": profile_summary(profile, seconds, spy.rate)}
    return figures


def query_counts(stack: Stack, n: int, duration: float, clients: int) -> dict[str, Any]:
    """A hub started with bench.settings_profile: SQL queries and channel-layer calls per request."""
    stats = stack.tmp / "hub-stats.json"
    hub = stack.start("queries", settings="bench.settings_profile", BENCH_STATS=str(stats))
    captured: dict[str, Any] = {}

    def window(phase: str, key: str) -> None:
        if phase == "start":
            hub.signal(signal.SIGUSR2)
            return
        stats.unlink(missing_ok=True)
        hub.signal(signal.SIGUSR1)
        for _ in range(100):
            if stats.exists():
                break
            time.sleep(0.05)
        captured[key] = json.loads(stats.read_text())

    try:
        sequential(stack, hub, "queries-seq", n, around=lambda p: window(p, "sequential"))
        concurrent(stack, [hub], "queries-conc", duration, clients, on_window=lambda p: window(p, "concurrent"))
    finally:
        hub.stop()
    return {k: per_request(v, _submissions(v)) for k, v in captured.items()}


def _submissions(snapshot: dict[str, Any]) -> int:
    """Requests submitted in the window: the INSERTs of the queue's table (under load many are in flight)."""
    return sum(q["count"] for q in snapshot["queries"] if q["sql"].startswith('INSERT INTO "relay_inferencerequest"'))


BACKGROUND = ("sweep", "heartbeat", "renew_lease")


def per_request(snapshot: dict[str, Any], requests: float) -> dict[str, Any]:
    by_origin: dict[str, list[float]] = {}
    background = 0
    for q in snapshot["queries"]:
        if any(b in q["origin"] for b in BACKGROUND):
            background += q["count"]
            continue
        entry = by_origin.setdefault(q["origin"], [0, 0.0])
        entry[0] += q["count"]
        entry[1] += q["total_ms"]
    per = max(requests, 1)
    return {
        "requests": round(requests),
        "queries_per_request": round((snapshot["query_count"] - background) / per, 2),
        "db_ms_per_request": round(sum(v[1] for v in by_origin.values()) / per, 3),
        "new_db_connections_per_request": round(snapshot["new_db_connections"] / per, 2),
        "background_queries": background,
        "query_threads": snapshot["query_threads"],
        "channel_layer_per_request": {
            k: {"calls": round(v["count"] / per, 2), "ms": round(v["total_ms"] / per, 3)}
            for k, v in snapshot["channel_layer"].items()
        },
        "by_origin": [
            {"origin": o, "per_request": round(c / per, 2), "ms_per_request": round(t / per, 3)}
            for o, (c, t) in sorted(by_origin.items(), key=lambda kv: -kv[1][0])
        ],
        "statements": snapshot["queries"][:40],
    }


def connections(stack: Stack, apps_n: int, watchers_n: int, trials: int, procs: int) -> dict[str, Any]:
    """Idle watchers of one space and registered apps on one fresh process: RSS and broadcast delay."""
    hubs.flush_redis()
    hub = stack.start("connections")
    time.sleep(1)
    rss = {"started_mb": hub.process.memory_info().rss / 2**20}
    app = Worker(stack.tmp, "conn-apps", ["bench.noop_app"], {"apps": [stack.app(hub, j) for j in range(apps_n)]})
    app.wait_ready(180)
    time.sleep(2)
    rss["with_apps_mb"] = hub.process.memory_info().rss / 2**20
    per = watchers_n // procs
    cfg = {"url": hub.ws, "origin": hub.http, "slug": stack.spaces[0]["slug"], "count": per}
    started = time.monotonic()
    watchers = [Worker(stack.tmp, f"conn-watchers{p}", ["bench.watchers"], cfg) for p in range(procs)]
    for w in watchers:
        w.wait_ready(300)
    connect_seconds = time.monotonic() - started
    time.sleep(2)
    rss["with_apps_and_watchers_mb"] = hub.process.memory_info().rss / 2**20
    triggers = []
    spec = stack.client(hub, 0, 0)
    for _ in range(trials):
        t0, status = asyncio.run(_submit(spec))
        triggers.append((t0, status))
        time.sleep(1.5)
    outs = [w.stop() for w in watchers]
    frames = [f for o in outs for f in o["frames"]]
    failures = [f for o in outs for f in o["failures"]]
    app.stop()
    threads = hub.process.num_threads()
    hub.stop()
    reach = []
    for k, (t0, _) in enumerate(triggers):
        t1 = triggers[k + 1][0] if k + 1 < len(triggers) else float("inf")
        delays = [next((t - t0 for t, _ in f if t0 < t < t1), None) for f in frames]
        got = [d for d in delays if d is not None]
        reach.append(
            {
                "reached": len(got),
                "of": len(frames),
                "all_ms": round(1000 * max(got), 1) if got else None,
                "p50_ms": round(1000 * percentile(got, 50), 1) if got else None,
            }
        )
    complete = [r["all_ms"] for r in reach if r["all_ms"] is not None and r["reached"] == r["of"] == watchers_n]
    return {
        "apps": apps_n,
        "watchers": watchers_n,
        "watchers_connect_seconds": round(connect_seconds, 1),
        "watchers_open": sum(o["open"] for o in outs),
        "watcher_connect_failures": len(failures),
        "watcher_failure_examples": failures[:3],
        "hub_threads": threads,
        **{k: round(v, 1) for k, v in rss.items()},
        "per_watcher_kb": round(
            (rss["with_apps_and_watchers_mb"] - rss["with_apps_mb"]) * 1024 / max(watchers_n, 1), 1
        ),
        "trigger_status": [s for _, s in triggers],
        "trials": reach,
        "reach_all_ms_median": round(percentile(complete, 50), 1) if complete else None,
        "reach_all_ms_max": max(complete) if complete else None,
    }


async def _submit(spec: dict[str, Any]) -> tuple[float, int]:
    import aiohttp

    headers = {"Cookie": spec["cookie"], "X-CSRFToken": spec["csrf"], "Accept": "application/json"}
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar(), headers=headers) as http:
        t0 = time.monotonic()
        async with http.post(f"{spec['base']}/spaces/{spec['slug']}/requests/", data={"prompt": "hi"}) as resp:
            return t0, resp.status


# --- Gradio ------------------------------------------------------------------------------------


def gradio(tmp: Path, n_client: int, n_raw: int, duration: float, clients: int) -> dict[str, Any]:
    port = hubs.free_port()
    server = Worker(tmp, "gradio-server", ["bench.gradio_bench", "server", str(port)]).wait_ready(180)
    url = f"http://127.0.0.1:{port}"
    out: dict[str, Any] = {}
    try:
        for kind, n in (("client", n_client), ("raw", n_raw)):
            cfg = {"url": url, "threads": 1, "n": n, "warmup": 10}
            res = Worker(tmp, f"gradio-{kind}-seq", ["bench.gradio_bench", kind], cfg).result(600)
            out[f"sequential_{kind}"] = {
                "end_to_end": latency([b - a for a, b in res["samples"]]),
                "requests_per_s": round(len(res["samples"]) / res["wall_seconds"], 1),
                "errors": len(res["errors"]),
                "error_examples": res["errors"][:3],
            }
        for kind in ("client", "raw"):
            out[f"concurrent_{kind}"] = _gradio_concurrent(tmp, kind, url, duration, clients, server.pid)
    finally:
        server.stop()
    return out


def _gradio_concurrent(tmp: Path, kind: str, url: str, duration: float, clients: int, pid: int) -> dict[str, Any]:
    start_at = time.monotonic() + 8.0  # 25 gradio_client Clients each fetch the app's config first
    measure_from, processes = start_at + 3.0, 2
    end_at = measure_from + duration
    cfg = {"url": url, "threads": clients // processes, "start_at": start_at}
    cfg |= {"measure_from": measure_from, "end_at": end_at}
    loads = [Worker(tmp, f"gradio-{kind}-conc{p}", ["bench.gradio_bench", kind], cfg) for p in range(processes)]
    time.sleep(max(0.0, measure_from - time.monotonic()))
    meter = CpuMeter({"gradio": [pid], "clients": [w.pid for w in loads]}).start()
    time.sleep(max(0.0, end_at - time.monotonic()))
    cpu = meter.stop()
    outs = [w.result(300) for w in loads]
    done = [(a, b) for o in outs for a, b in o["samples"] if measure_from <= b <= end_at]
    errors = [e for o in outs for e in o["errors"]]
    return {
        "clients": clients,
        "seconds": duration,
        "requests_per_s": round(len(done) / duration, 1),
        "end_to_end": latency([b - a for a, b in done]),
        "errors": len(errors),
        "error_examples": errors[:3],
        **cpu,
    }

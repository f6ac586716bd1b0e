"""Counters for a profiled hub: each SQL query by the project code that ran it, new database
connections, and channel-layer calls. Installed by bench/settings_profile.py."""

import json
import os
import re
import signal
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from functools import wraps
from typing import Any

_lock = threading.RLock()  # the SIGUSR1 handler may interrupt a holder on the main thread
_queries: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0, 0.0])
_threads: dict[str, int] = defaultdict(int)
_layer: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
_state = {"connections": 0, "since": time.time()}

_IN_LIST = re.compile(r"IN \((%s, )*%s\)")
_PROJECT = ("/relay/", "/spaces/", "/spacehub/")


def _origin() -> str:
    """The chain of project functions that led to this query (outermost first), or the library."""
    chain: list[str] = []
    library = ""
    frame = sys._getframe(3)
    while frame is not None and len(chain) < 4:
        path = frame.f_code.co_filename
        if any(p in path for p in _PROJECT) and "/migrations/" not in path:
            module = "/".join(path.removesuffix(".py").rsplit("/", 2)[-2:])
            chain.append(f"{module}.{frame.f_code.co_name}")
        elif not library and "/django/db/" not in path and "/bench/" not in path:
            match = re.search(r"site-packages/(.+?)\.py", path)
            if match and not match[1].startswith(("asgiref", "concurrent")):
                library = f"{match[1].replace('/', '.')}.{frame.f_code.co_name}"
        frame = frame.f_back
    return " > ".join(reversed(chain)) if chain else (library or "other")


def _wrapper(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
    origin = _origin()
    started = time.perf_counter()
    try:
        return execute(sql, params, many, context)
    finally:
        elapsed = time.perf_counter() - started
        key = (origin, _IN_LIST.sub("IN (...)", sql)[:300])
        with _lock:
            entry = _queries[key]
            entry[0] += 1
            entry[1] += elapsed
            _threads[threading.current_thread().name.split("-")[0]] += 1


def _on_connect(sender: Any, connection: Any, **kwargs: Any) -> None:
    with _lock:
        _state["connections"] += 1
    if _wrapper not in connection.execute_wrappers:
        connection.execute_wrappers.append(_wrapper)


def _count_layer(cls: type, name: str) -> None:
    original = getattr(cls, name)

    @wraps(original)
    async def counted(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await original(*args, **kwargs)
        finally:
            entry = _layer[name]
            entry[0] += 1
            entry[1] += time.perf_counter() - started

    setattr(cls, name, counted)


def snapshot() -> dict[str, Any]:
    with _lock:
        queries = [
            {"origin": o, "sql": s, "count": int(c), "total_ms": round(t * 1000, 3)}
            for (o, s), (c, t) in sorted(_queries.items(), key=lambda kv: -kv[1][0])
        ]
        return {
            "seconds": round(time.time() - _state["since"], 3),
            "queries": queries,
            "query_count": sum(q["count"] for q in queries),
            "query_ms": round(sum(q["total_ms"] for q in queries), 3),
            "new_db_connections": _state["connections"],
            "query_threads": dict(_threads),
            "channel_layer": {k: {"count": int(c), "total_ms": round(t * 1000, 3)} for k, (c, t) in _layer.items()},
        }


def reset() -> None:
    with _lock:
        _queries.clear()
        _threads.clear()
        _layer.clear()
        _state.update(connections=0, since=time.time())


def install() -> None:
    from django.db.backends.signals import connection_created

    connection_created.connect(_on_connect, weak=False)
    if os.environ.get("REDIS_URL"):
        from channels_redis.core import RedisChannelLayer

        for name in ("send", "group_send", "group_add", "group_discard", "new_channel"):
            _count_layer(RedisChannelLayer, name)
    path = os.environ.get("BENCH_STATS", "bench-stats.json")

    def dump(*_: Any) -> None:
        data = json.dumps(snapshot())
        with open(path + ".part", "w") as out:
            out.write(data)
        os.replace(path + ".part", path)

    signal.signal(signal.SIGUSR1, dump)
    signal.signal(signal.SIGUSR2, lambda *_: reset())

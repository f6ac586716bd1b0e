"""Percentiles, the machine's description, and what a py-spy profile says."""

import json
import os
import platform
import re
import subprocess
from collections import Counter, defaultdict
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def percentile(values: list[float], p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def latency(seconds: list[float]) -> dict[str, Any]:
    """p50/p90/p99/mean/max in milliseconds."""
    ms = [s * 1000 for s in seconds]
    if not ms:
        return {"n": 0}
    return {
        "n": len(ms),
        "p50_ms": round(percentile(ms, 50), 3),
        "p90_ms": round(percentile(ms, 90), 3),
        "p99_ms": round(percentile(ms, 99), 3),
        "mean_ms": round(sum(ms) / len(ms), 3),
        "max_ms": round(max(ms), 3),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "unknown"


def machine() -> dict[str, Any]:
    import psutil

    packages = {}
    for name in (
        "Django",
        "channels",
        "channels-redis",
        "daphne",
        "Twisted",
        "redis",
        "psycopg",
        "websockets",
        "asgiref",
        "aiohttp",
        "gradio",
        "gradio-client",
        "py-spy",
    ):
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = None
    commit = _version(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    changes = ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"]
    dirty = bool(subprocess.run(changes, capture_output=True, text=True, check=False).stdout.strip())
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "kernel": platform.release(),
        "os": _version(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
        "python": platform.python_version(),
        "postgresql": _version(["psql", "--version"]),
        "redis": _version(["redis-server", "--version"]),
        "packages": packages,
        "git": f"{commit}{'+dirty' if dirty else ''}",
    }


# --- py-spy raw (collapsed) profiles ------------------------------------------------------

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")
PROJECT = ("relay/", "spaces/", "spacehub/")
# Leaves where a thread waits for work (with --idle): the rest of its samples is time it was occupied.
WAITING = (
    "_worker (concurrent/futures/thread.py)",
    "EpollSelector.select (selectors.py)",
    "Condition.wait (threading.py)",
    "Thread._wait_for_tstate_lock (threading.py)",
)
# Occupied, but waiting on PostgreSQL (a query or a new connection's handshake).
ON_POSTGRES = ("Connection.wait (psycopg/connection.py)", "BaseConnection._connect_gen (psycopg/_connection_base.py)")


def _short(frame: str) -> str:
    """`func (path/to/site-packages/pkg/mod.py:12)` -> `func (pkg/mod.py)`."""
    m = _FRAME.match(frame)
    if not m:
        return frame
    path = m["file"]
    for marker in ("site-packages/", "lib/python3.11/", str(ROOT) + "/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{m['func']} ({path})"


def _role(head: str, stacks: list[str]) -> str:
    joined = ";".join(stacks)
    if "MainThread" in head:
        return "event loop (MainThread)"
    if "channels/db.py" in joined:
        return "consumer DB thread (database_sync_to_async)"
    if "django/views" in joined or "relay/views.py" in joined or "django/core/handlers" in joined:
        return "HTTP view threads (sync_to_async, one per request)"
    return "other threads"


def profile_summary(raw_path: Path, duration: float, rate: int, top: int = 25) -> dict[str, Any]:
    """Per thread role: how occupied it was, top leaves, and where its occupied time went (inclusive).

    With `--idle` the samples are wall time: `occupied_pct` is the time the role's threads were not
    waiting for work (in percent of one thread; the view threads add up), `on_postgres_pct` the part
    of it spent waiting on PostgreSQL. Without `--idle` they are the CPU-active samples.
    """
    per_thread: dict[str, list[tuple[list[str], int]]] = defaultdict(list)
    for line in raw_path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        head = frames[0]  # "thread (tid): name" with --threads
        per_thread[head].append((frames[1:] if head.startswith("thread") else frames, int(count)))
    roles: dict[str, dict[str, Any]] = defaultdict(
        lambda: {
            "threads": 0,
            "samples": 0,
            "occupied": 0,
            "postgres": 0,
            "leaf": Counter(),
            "inclusive": Counter(),
            "project": Counter(),
        }
    )
    for head, rows in per_thread.items():
        role = _role(head, [";".join(f) for f, _ in rows])
        r = roles[role]
        r["threads"] += 1
        for frames, count in rows:
            r["samples"] += count
            short = [_short(f) for f in frames]
            if short:
                r["leaf"][short[-1]] += count
                if short[-1] in WAITING:
                    continue
            r["occupied"] += count
            if short and short[-1] in ON_POSTGRES:
                r["postgres"] += count
            for f in set(short):
                r["inclusive"][f] += count
                if any(p in f for p in PROJECT) and "bench/" not in f:
                    r["project"][f] += count
    possible = max(duration * rate, 1)
    total = sum(r["samples"] for r in roles.values()) or 1
    out = {}
    for role, r in sorted(roles.items(), key=lambda kv: -kv[1]["samples"]):
        n = r["occupied"] or 1
        out[role] = {
            "threads": r["threads"],
            "samples": r["samples"],
            "occupied_pct": round(100 * r["occupied"] / possible, 1),
            "on_postgres_pct": round(100 * r["postgres"] / possible, 1),
            "share_of_all_samples_pct": round(100 * r["samples"] / total, 1),
            "top_leaf": [(f, round(100 * c / (r["samples"] or 1), 1)) for f, c in r["leaf"].most_common(top)],
            "top_inclusive": [(f, round(100 * c / n, 1)) for f, c in r["inclusive"].most_common(top)],
            "top_project": [(f, round(100 * c / n, 1)) for f, c in r["project"].most_common(top)],
        }
    return out


def dump(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str))

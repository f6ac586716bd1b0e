"""The results table, the ratios and the issue's goals, from the results dict."""

from typing import Any


def _get(d: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return d


def _ms(v: Any) -> str:
    return "-" if v is None else f"{v:.1f} ms" if v >= 10 else f"{v:.2f} ms"


def _lat(fig: Any) -> tuple[str, str]:
    return _ms(_get(fig, "end_to_end", "p50_ms") or _get(fig, "round_trip", "p50_ms")), _ms(
        _get(fig, "end_to_end", "p99_ms") or _get(fig, "round_trip", "p99_ms")
    )


def _ratio(a: Any, b: Any) -> str:
    if not (a and b):
        return "-"
    ratio = a / b
    return f"{ratio:.1f}x" if ratio >= 0.95 else f"{ratio:.3g}x (1/{b / a:.1f})"


def rows(r: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """(what, p50, p99, requests/s, notes)."""
    out: list[tuple[str, str, str, str, str]] = []

    def add(label: str, fig: Any, note: str = "") -> None:
        if fig is None:
            return
        p50, p99 = _lat(fig)
        rps = fig.get("requests_per_s")
        errors = fig.get("errors")
        notes = [note] if note else []
        if errors:
            notes.append(f"{errors} errors")
        out.append((label, p50, p99, "-" if rps is None else f"{rps:.0f}", "; ".join(notes)))

    add("Floor: websockets echo round trip", _get(r, "floor", "echo"))
    add("Floor: same wire shape, in-memory aiohttp relay, sequential", _get(r, "floor", "relay", "sequential"))
    fig = _get(r, "floor", "relay", "concurrent")
    if fig:
        add(f"Floor: same, {fig['clients']} clients", fig, f"relay CPU {_get(fig, 'server_cpu_pct')}%")
    for db, base in (
        ("postgresql", ("postgresql",)),
        ("postgresql, DB_CONN_MAX_AGE=60", ("postgresql", "persistent_connections")),
        ("sqlite", ("sqlite",)),
    ):
        seq = _get(r, *base, "sequential")
        if seq:
            split = seq.get("split", {})
            note = (
                f"submit->app {_ms(_get(split, 'submit_to_app_receives', 'p50_ms'))}, "
                f"app->browser {_ms(_get(split, 'app_answers_to_browser_receives', 'p50_ms'))}, "
                f"hub CPU {_get(seq, 'cpu_ms_per_request', 'hub')} ms/req"
            )
            add(f"SpaceHub {db}: sequential", seq, note)
        for key, label in (("concurrent_1", "1 daphne"), ("concurrent_2", "2 daphnes")):
            fig = _get(r, *base, key)
            if fig:
                hubs_cpu = "+".join(str(fig.get(f"hub{i}_cpu_pct")) for i in range(fig.get("hubs", 1)))
                note = (
                    f"hub CPU {hubs_cpu}%, pg {fig.get('postgres_cpu_pct')}%, redis {fig.get('redis_cpu_pct')}%, "
                    f"clients {fig.get('clients_cpu_pct')}%, apps {fig.get('apps_cpu_pct')}%, "
                    f"others {fig.get('others_cpu_pct')}%, machine {fig.get('machine_cpu_pct')}% of 200%"
                )
                add(f"SpaceHub {db}: {fig['clients']} clients, {label}", fig, note)
    for key, label in (
        ("sequential_client", "Gradio queue, gradio_client, sequential"),
        ("sequential_raw", "Gradio queue, HTTP API (aiohttp), sequential"),
        ("concurrent_client", "Gradio queue, gradio_client, 50 clients"),
        ("concurrent_raw", "Gradio queue, HTTP API, 50 clients"),
    ):
        fig = _get(r, "gradio", key)
        add(label, fig, f"gradio CPU {fig.get('gradio_cpu_pct')}%" if fig and "gradio_cpu_pct" in fig else "")
    return out


def ratios(r: dict[str, Any]) -> dict[str, str]:
    hub = _get(r, "postgresql", "sequential", "end_to_end", "p50_ms")
    hub99 = _get(r, "postgresql", "sequential", "end_to_end", "p99_ms")
    c1 = _get(r, "postgresql", "concurrent_1", "requests_per_s")
    return {
        "SpaceHub seq p50 / ws echo p50": _ratio(hub, _get(r, "floor", "echo", "round_trip", "p50_ms")),
        "SpaceHub seq p50 / same-shape relay floor p50": _ratio(
            hub, _get(r, "floor", "relay", "sequential", "end_to_end", "p50_ms")
        ),
        "Gradio (gradio_client) seq p50 / SpaceHub seq p50": _ratio(
            _get(r, "gradio", "sequential_client", "end_to_end", "p50_ms"), hub
        ),
        "Gradio (HTTP API) seq p50 / SpaceHub seq p50": _ratio(
            _get(r, "gradio", "sequential_raw", "end_to_end", "p50_ms"), hub
        ),
        "Gradio (gradio_client) seq p99 / SpaceHub seq p99": _ratio(
            _get(r, "gradio", "sequential_client", "end_to_end", "p99_ms"), hub99
        ),
        "SpaceHub concurrent req/s / Gradio (gradio_client) concurrent": _ratio(
            c1, _get(r, "gradio", "concurrent_client", "requests_per_s")
        ),
        "SpaceHub concurrent req/s / Gradio (HTTP API) concurrent": _ratio(
            c1, _get(r, "gradio", "concurrent_raw", "requests_per_s")
        ),
        "SpaceHub concurrent req/s / same-shape relay floor": _ratio(
            c1, _get(r, "floor", "relay", "concurrent", "requests_per_s")
        ),
        "2 daphnes / 1 daphne req/s": _ratio(_get(r, "postgresql", "concurrent_2", "requests_per_s"), c1),
    }


def goals(r: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    """(goal, measured, met); met is None when the run did not measure it."""
    seq = _get(r, "postgresql", "sequential", "end_to_end") or {}
    gradio = _get(r, "gradio", "sequential_client", "end_to_end", "p50_ms")
    c1 = _get(r, "postgresql", "concurrent_1", "requests_per_s")
    c2 = _get(r, "postgresql", "concurrent_2", "requests_per_s")
    conn = _get(r, "postgresql", "connections") or {}
    rss = conn.get("with_apps_and_watchers_mb")
    reach = conn.get("reach_all_ms_max")
    full = conn.get("watchers") == 1000 and conn.get("apps") == 100

    def check(value: Any, ok: bool) -> bool | None:
        return None if value is None else ok

    p50, p99 = seq.get("p50_ms"), seq.get("p99_ms")
    return [
        ("sequential p50 <= 5 ms (PostgreSQL, Redis)", _ms(p50), check(p50, (p50 or 0) <= 5)),
        ("sequential p99 <= 15 ms", _ms(p99), check(p99, (p99 or 0) <= 15)),
        (
            "Gradio p50 / SpaceHub p50 >= 15x",
            _ratio(gradio, p50),
            check(gradio and p50, bool(gradio and p50 and gradio / p50 >= 15)),
        ),
        (">= 200 req/s, 1 daphne, 50 clients", f"{c1}", check(c1, (c1 or 0) >= 200)),
        (">= 1.6x that with 2 daphnes", _ratio(c2, c1), check(c2, bool(c1 and c2 and c2 / c1 >= 1.6))),
        (
            "1,000 watchers + 100 apps < 300 MB RSS",
            f"{rss} MB" if rss else "-",
            check(rss if full else None, (rss or 0) < 300),
        ),
        (
            "queue change reaches all watchers < 200 ms",
            _ms(reach),
            check(reach if full else None, (reach or 1e9) < 200),
        ),
    ]


def render(r: dict[str, Any]) -> str:
    table = rows(r)
    widths = [max(len(row[i]) for row in [("what", "p50", "p99", "req/s", ""), *table]) for i in range(4)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(("what", "p50", "p99", "req/s"), widths, strict=True)) + "  notes"]
    for row in table:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row[:4], widths, strict=True)) + "  " + row[4])
    conn = _get(r, "postgresql", "connections")
    if conn:
        lines.append("")
        lines.append(
            f"Connections: {conn['watchers']} idle watchers + {conn['apps']} apps on one daphne: RSS "
            f"{conn['started_mb']} MB idle -> {conn['with_apps_mb']} MB with apps -> "
            f"{conn['with_apps_and_watchers_mb']} MB with watchers ({conn['per_watcher_kb']} KB a watcher); "
            f"a queue change reached all of them in {_ms(conn['reach_all_ms_median'])} median, "
            f"{_ms(conn['reach_all_ms_max'])} worst of {len(conn['trials'])} "
            f"(watchers connected in {conn['watchers_connect_seconds']} s, "
            f"{conn.get('watcher_connect_failures', 0)} refused handshakes retried)"
        )
        if conn["reach_all_ms_max"] is None:
            lines.append(f"  not every watcher got every change: {conn['trials']}")
    lines.append("")
    lines.append("Ratios:")
    for k, v in ratios(r).items():
        lines.append(f"  {k}: {v}")
    lines.append("")
    lines.append("Goals (issue #7):")
    for goal, measured, met in goals(r):
        mark = "n/a " if met is None else "MET " if met else "MISS"
        lines.append(f"  [{mark}] {goal}: {measured}")
    return "\n".join(lines)

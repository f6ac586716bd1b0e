"""Run the whole benchmark in one go: `python -m bench.run` (or `--quick` for a smoke run).

Needs PostgreSQL and Redis on 127.0.0.1 (the bench makes its own database, spacehub_bench, and uses
Redis database 14). Prints the table and writes bench/results/<time>-<mode>.json.
"""

import argparse
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from bench import phases, report
from bench.hub import recreate_postgres
from bench.procs import stop_all
from bench.stats import dump, machine

RESULTS = Path(__file__).resolve().parent / "results"

FULL = {
    "echo": 2000,
    "seq": 500,
    "profile_seq": 100,
    "sqlite_seq": 150,
    "duration": 30.0,
    "profile_duration": 8.0,
    "clients": 50,
    "spaces": 100,
    "watchers": 1000,
    "apps": 100,
    "trials": 5,
    "sqlite_duration": 10.0,
    "gradio_client_seq": 150,
    "gradio_raw_seq": 200,
    "gradio_duration": 15.0,
}
QUICK = {
    "echo": 200,
    "seq": 30,
    "duration": 3.0,
    "clients": 10,
    "spaces": 10,
    "watchers": 50,
    "apps": 5,
    "trials": 2,
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def run(args: argparse.Namespace, tmp: Path, results: dict[str, Any]) -> None:
    c = QUICK if args.quick else FULL
    log("floor: websockets echo")
    results["floor"] = {"echo": phases.floor_echo(tmp, c["echo"])}
    log("floor: the same wire shape through an in-memory relay")
    results["floor"]["relay"] = phases.floor_relay(tmp, c["seq"], min(c["duration"], 10.0), c["clients"])

    log("PostgreSQL: migrate, collectstatic, spaces and users")
    pg = phases.Stack(tmp, "pg", recreate_postgres("spacehub_bench"), c["spaces"], c["clients"])
    res: dict[str, Any] = {}
    results["postgresql"] = res
    a = pg.start("a")
    try:
        log(f"SpaceHub sequential: {c['seq']} requests")
        res["sequential"] = phases.sequential(pg, a, "pg-seq", c["seq"])
        if not args.quick:
            log("SpaceHub sequential, profiled (py-spy, wall time)")
            profile = tmp / "profile-sequential.txt"
            res["sequential_profile"] = phases.sequential(pg, a, "pg-seq-prof", c["profile_seq"], profile=profile)
            log("SpaceHub sequential, profiled (py-spy --gil: where the CPU goes)")
            profile = tmp / "profile-sequential-gil.txt"
            res["sequential_cpu_profile"] = phases.sequential(
                pg, a, "pg-seq-gil", c["profile_seq"], profile=profile, gil=True
            )
        log(f"SpaceHub concurrent: {c['clients']} clients, 1 daphne, {c['duration']} s")
        res["concurrent_1"] = phases.concurrent(pg, [a], "pg-conc1", c["duration"], c["clients"])
        if not args.quick:
            log("SpaceHub concurrent, profiled (py-spy, wall time)")
            profile = tmp / "profile-concurrent.txt"
            res["concurrent_1_profile"] = phases.concurrent(
                pg, [a], "pg-conc1-prof", c["profile_duration"], c["clients"], profile=profile
            )
            log(f"SpaceHub concurrent: {c['clients']} clients, 2 daphnes, {c['duration']} s")
            b = pg.start("b")
            try:
                res["concurrent_2"] = phases.concurrent(pg, [a, b], "pg-conc2", c["duration"], c["clients"])
            finally:
                b.stop()
    finally:
        a.stop()
    if args.variants:
        log("variant: DB_CONN_MAX_AGE=60 (persistent database connections)")
        v = pg.start("persistent", DB_CONN_MAX_AGE="60")
        try:
            res["persistent_connections"] = {
                "sequential": phases.sequential(pg, v, "pg-persist-seq", c["seq"]),
                "concurrent_1": phases.concurrent(pg, [v], "pg-persist-conc1", c["duration"], c["clients"]),
            }
        finally:
            v.stop()
    if not args.quick:
        log("SpaceHub with query counters (bench.settings_profile)")
        res["queries"] = phases.query_counts(pg, 100, c["profile_duration"], c["clients"])
    log(f"connections: {c['watchers']} watchers, {c['apps']} apps")
    res["connections"] = phases.connections(pg, c["apps"], c["watchers"], c["trials"], 1 if args.quick else 2)

    if not args.quick and not args.no_sqlite:
        log("SQLite: migrate, spaces and users")
        lite = phases.Stack(tmp, "sqlite", f"sqlite:///{tmp / 'bench.sqlite3'}", 10, c["clients"])
        results["sqlite"] = sq = {}
        hub = lite.start("a")
        try:
            log("SQLite sequential")
            sq["sequential"] = phases.sequential(lite, hub, "lite-seq", c["sqlite_seq"])
            log("SQLite concurrent, 1 daphne")
            sq["concurrent_1"] = phases.concurrent(lite, [hub], "lite-conc1", c["sqlite_duration"], c["clients"])
        finally:
            hub.stop()

    if not args.quick and not args.no_gradio:
        log("Gradio: the same no-op behind its queue")
        results["gradio"] = phases.gradio(
            tmp, c["gradio_client_seq"], c["gradio_raw_seq"], c["gradio_duration"], c["clients"]
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smoke run: tiny counts, a few seconds, no Gradio")
    parser.add_argument("--no-gradio", action="store_true", help="skip Gradio")
    parser.add_argument("--no-sqlite", action="store_true", help="skip the SQLite runs")
    parser.add_argument(
        "--variants", action="store_true", help="also run with DB_CONN_MAX_AGE=60 (what persistent connections give)"
    )
    args = parser.parse_args()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    mode = "quick" if args.quick else "full"
    tmp = RESULTS / "tmp" / f"{stamp}-{mode}"
    tmp.mkdir(parents=True)
    started = time.monotonic()
    results: dict[str, Any] = {"mode": mode, "started": stamp, "machine": machine(), "scratch": str(tmp)}
    results["load_average_before"] = os.getloadavg()
    failed = False
    try:
        run(args, tmp, results)
    except (Exception, KeyboardInterrupt):
        failed = True
        results["failure"] = traceback.format_exc()
        traceback.print_exc()
    finally:
        stop_all()
    results["seconds"] = round(time.monotonic() - started, 1)
    results["load_average_after"] = os.getloadavg()
    text = report.render(results)
    results["table"] = text.splitlines()
    results["goals"] = [{"goal": g, "measured": m, "met": ok} for g, m, ok in report.goals(results)]
    path = RESULTS / f"{stamp}-{mode}.json"
    dump(path, results)
    print()
    print(text)
    print(f"\n{json.dumps(str(path))} ({results['seconds']} s; logs and profiles in {tmp})")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()

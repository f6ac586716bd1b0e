"""A profiled hub: bench.settings_bench (the hub of the timed runs) plus counters of SQL queries and
channel-layer calls.

Start daphne with DJANGO_SETTINGS_MODULE=bench.settings_profile and BENCH_STATS=<path>. SIGUSR2 resets
the counters, SIGUSR1 writes them to that path as JSON. Only the query-count pass uses this module:
its counters cost time, so the timed runs use bench.settings_bench.
"""

from bench import instrument
from bench.settings_bench import *  # noqa: F403

instrument.install()

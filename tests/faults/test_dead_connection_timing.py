"""How long a silently dead app connection keeps its space, with the daphne flags operators run.

daphne pings a socket that sent nothing for --ping-interval seconds (it looks every 2 s) and drops it
when no pong comes within --ping-timeout; until then the consumer lives and renews the lease. So a
network cut or a frozen app is noticed after at most interval + 2 + timeout seconds
(test_app_faults.py measures it on live daphne with the test flags, 5 and 10). PROTOCOL.md: "A
connection that died without closing (crash, network cut) stops counting as alive within 30 s".
"""

import re

import pytest

from tests.live import ROOT

CHECK_EVERY = 2  # daphne's timeout_checker
CONTRACT = 30
FLAGS = re.compile(r"--ping-interval\s+(\d+)\s+(?:\\\s*)?--ping-timeout\s+(\d+)")


@pytest.mark.parametrize("path", ["Procfile", "deploy/spacehub@.service", "docs/deploy.md"])
def test_the_production_flags_drop_a_silent_app_within_the_contract_s_30_seconds(path: str) -> None:
    found = [(int(i), int(t)) for i, t in FLAGS.findall((ROOT / path).read_text())]
    assert found, f"{path} names no --ping-interval/--ping-timeout"
    for interval, timeout in found:
        assert interval + CHECK_EVERY + timeout <= CONTRACT, f"{path}: up to {interval + CHECK_EVERY + timeout} s"

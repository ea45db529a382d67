"""shared.hosts: which base URL a worker uses, and when it moves to the other one."""

import logging

from shared.hosts import Hosts
from shared.stats import Stats

PRIMARY = "wss://ws-api.korbit.co.kr/v2/public"
ALTERNATE = "wss://ws-api.digitalx.miraeasset.com/v2/public/"


def _hosts(alternate: str | None, switch_after: int = 3) -> tuple[Hosts, Stats]:
    stats = Stats()
    return Hosts("WebSocket", PRIMARY, alternate, switch_after, stats, logging.getLogger("test")), stats


def test_the_primary_until_switch_after_failures_in_a_row() -> None:
    hosts, stats = _hosts(ALTERNATE)
    url = PRIMARY + "?stream=ticker"
    assert not hosts.failed() and not hosts.failed()
    hosts.succeeded()  # a success in between: the count starts over
    assert not hosts.failed() and not hosts.failed()
    assert hosts.rebased(url) == url
    assert hosts.failed()
    assert hosts.base == ALTERNATE.rstrip("/")
    assert hosts.rebased(url) == "wss://ws-api.digitalx.miraeasset.com/v2/public?stream=ticker"
    assert stats.host_switches == 1


def test_back_to_the_primary_the_same_way() -> None:
    hosts, stats = _hosts(ALTERNATE, switch_after=1)
    assert hosts.failed() and hosts.base != PRIMARY
    assert hosts.failed() and hosts.base == PRIMARY
    assert hosts.rebased(PRIMARY + "/x") == PRIMARY + "/x"
    assert stats.host_switches == 2


def test_without_an_alternate_nothing_moves() -> None:
    hosts, stats = _hosts(None, switch_after=1)
    assert not any(hosts.failed() for _ in range(10))
    assert hosts.base == PRIMARY and stats.host_switches == 0

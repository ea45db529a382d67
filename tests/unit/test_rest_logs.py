"""A failed REST call is logged with one cause, once: requests' exceptions nest
urllib3's, and each repeats the host and URL (lines of 350-400 characters before)."""

import asyncio
import logging

import pytest

from shared.rest import RestClient, RestUnavailable
from shared.stats import Stats
from tests.harness import free_port


@pytest.mark.parametrize("url, cause", [
    ("http://127.0.0.1:{refused}/v1/ticker?markets=KRW-BTC,KRW-ETH", "ConnectionError: [Errno 111] Connection refused"),
    # The resolver's words vary (-2 Name or service not known, -3 Temporary failure...).
    ("http://no-such-host.invalid/v1/ticker?markets=KRW-BTC", "ConnectionError: [Errno -"),
])
def test_a_failed_call_is_logged_with_its_one_cause(url: str, cause: str, caplog: pytest.LogCaptureFixture) -> None:
    url = url.format(refused=free_port())
    client = RestClient({}, 2, 0.01, 0.01, Stats(), logging.getLogger("coinstream.test.rest"))
    with caplog.at_level(logging.WARNING, logger="coinstream.test.rest"), pytest.raises(RestUnavailable) as gave_up:
        asyncio.run(client.get(url, attempts=2))
    client.close()
    host = url.split("/")[2].split(":")[0]
    for line in [record.getMessage() for record in caplog.records] + [str(gave_up.value)]:
        assert cause in line, line
        assert line.count(host) == 1, line
        assert len(line) < 200, line

"""The simulator's HTTP answers say when it closes the connection after them, as an
HTTP/1.1 server must (RFC 9112 9.6): websockets half-closes after every answer but an
upgrade, and a client that took the connection for a persistent one sent its next
request there, which the server never read (RemoteDisconnected, about one call in a
hundred under the fleet's load)."""

import asyncio
import http.client

import pytest

from simulator.coinbase import CoinbaseSim
from simulator.core import universe


async def _answers(paths: list[str]) -> list[http.client.HTTPResponse]:
    sim = CoinbaseSim(universe(CoinbaseSim.default_quote, 3), rate_per_s=1.0)
    await sim.start()
    try:
        return await asyncio.to_thread(_get_each, sim.port, paths)
    finally:
        await sim.stop()


def _get_each(port: int, paths: list[str]) -> list[http.client.HTTPResponse]:
    answers = []
    for path in paths:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        connection.request("GET", path)
        answer = connection.getresponse()
        answer.read()
        connection.close()
        answers.append(answer)
    return answers


@pytest.mark.parametrize("path", [
    "/products",
    "/products/SIM0001-USD/book?level=2",
    "/products/NO-SUCH/book?level=2",  # an error answer
    "/_sim/stats",
])
def test_every_http_answer_says_the_connection_closes(path: str) -> None:
    [answer] = asyncio.run(_answers([path]))
    assert answer.getheader("Connection") == "close"
    assert answer.will_close


def test_a_fault_answer_says_the_connection_closes_too() -> None:
    _, refused = asyncio.run(_answers(["/_sim/fault?kind=http_500&count=1", "/products"]))
    assert refused.status == 500
    assert refused.will_close

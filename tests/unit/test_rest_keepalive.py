"""A kept-alive connection the server closes as the next request goes out (its idle
close crossing the request on the wire) ends before any answer: the GET is sent again
at once on a new connection, counted in rest_resent, not as a REST error and without
the backoff. A connection that ends before its first answer is the server's failure."""

import asyncio
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from shared.rest import RestClient, RestUnavailable
from shared.stats import Stats

BODY = b'{"ok": true}'
BACKOFF_S = 5.0  # longer than the test waits: a backoff would show


class _AnswersOncePerConnection(BaseHTTPRequestHandler):
    """Answers a connection's first request, kept alive, and closes the connection
    unanswered when the next one arrives."""

    protocol_version = "HTTP/1.1"

    def handle(self) -> None:
        self.handle_one_request()
        self.rfile.readline()

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, *args: object) -> None:
        pass


class _NeverAnswers(_AnswersOncePerConnection):
    def handle(self) -> None:
        self.rfile.readline()


@pytest.fixture
def serve(request: pytest.FixtureRequest) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), request.param)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/ticker"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("serve", [_AnswersOncePerConnection], indirect=True)
def test_a_get_on_a_connection_closed_as_it_went_out_is_sent_again_at_once(
        serve: str, caplog: pytest.LogCaptureFixture) -> None:
    stats = Stats()
    client = RestClient({}, 5, BACKOFF_S, BACKOFF_S, stats, logging.getLogger("coinstream.test.rest"))

    async def three_calls() -> list[bytes]:
        return [(await asyncio.wait_for(client.get(serve), BACKOFF_S / 2))[0] for _ in range(3)]

    with caplog.at_level(logging.WARNING, logger="coinstream.test.rest"):
        assert asyncio.run(three_calls()) == [BODY] * 3
    client.close()
    assert (stats.rest_polls, stats.rest_errors, stats.rest_resent) == (3, 0, 2)
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 2
    for line in lines:
        assert line.startswith(f"GET {serve}: ")
        assert "a kept-alive connection ended before answering" in line
        assert line.endswith("; sent again on a new one")


@pytest.mark.parametrize("serve", [_NeverAnswers], indirect=True)
def test_a_new_connection_that_ends_unanswered_is_an_error(serve: str) -> None:
    stats = Stats()
    client = RestClient({}, 5, 0.01, 0.01, stats, logging.getLogger("coinstream.test.rest"))
    with pytest.raises(RestUnavailable):
        asyncio.run(client.get(serve, attempts=2))
    client.close()
    assert (stats.rest_polls, stats.rest_errors, stats.rest_resent) == (2, 2, 0)

"""A REST body is read up to MAX_BODY_BYTES: a server that sends more (an endless body,
gigabytes within the deadline) fails the call, which is tried again as on a connection
error, and the worker's memory never holds it. Before, requests read a body whole."""

import asyncio
import logging
import resource
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from shared import rest
from shared.rest import RestClient, RestUnavailable
from shared.stats import Stats

BLOCK = b"[" + b" " * (1024 * 1024 - 2) + b"]"
# What the "huge" answer sends: four times the cap, so that a client without one reads it
# whole and its test fails on the answer, not on the machine's memory.
HUGE_BLOCKS = 4 * rest.MAX_BODY_BYTES // len(BLOCK)


class _Answers(BaseHTTPRequestHandler):
    """/huge: HUGE_BLOCKS blocks without a Content-Length (the body ends with the
    connection, as a stream would); any other path: one block."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(200)
        self.send_header("Connection", "close")
        if self.path != "/huge":
            self.send_header("Content-Length", str(len(BLOCK)))
        self.end_headers()
        try:
            for _ in range(HUGE_BLOCKS if self.path == "/huge" else 1):
                self.wfile.write(BLOCK)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client stopped reading

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    serving = ThreadingHTTPServer(("127.0.0.1", 0), _Answers)
    threading.Thread(target=serving.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{serving.server_address[1]}"
    serving.shutdown()
    serving.server_close()


def test_a_body_over_the_cap_fails_the_call_unheld(server: str, caplog: pytest.LogCaptureFixture) -> None:
    stats = Stats()
    client = RestClient({}, 30, 0.01, 0.01, stats, logging.getLogger("coinstream.test.rest"))
    peak_before_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with caplog.at_level(logging.WARNING, logger="coinstream.test.rest"), pytest.raises(RestUnavailable) as gave_up:
        asyncio.run(client.get(f"{server}/huge", attempts=2))
    client.close()
    problem = f"BodyTooLarge: a body of more than {rest.MAX_BODY_BYTES} bytes; not read further"
    assert problem in str(gave_up.value)
    assert (stats.rest_polls, stats.rest_errors) == (2, 2)
    assert [record.getMessage() for record in caplog.records] == [f"GET {server}/huge: {problem}; retrying in 0.0 s"]
    # Never more than the cap's chunks at once: the peak grew by less than twice the cap.
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before_kb < 2 * rest.MAX_BODY_BYTES / 1024


def test_a_body_as_long_as_the_cap_is_read_whole_and_one_byte_more_is_refused(server: str) -> None:
    answered = RestClient({}, 30, 0.01, 0.01, Stats(), logging.getLogger("coinstream.test.rest"),
                          max_body_bytes=len(BLOCK))
    body, _ = asyncio.run(answered.get(f"{server}/block", attempts=1))
    answered.close()
    assert body == BLOCK
    refused = RestClient({}, 30, 0.01, 0.01, Stats(), logging.getLogger("coinstream.test.rest"),
                         max_body_bytes=len(BLOCK) - 1)
    with pytest.raises(RestUnavailable, match=f"more than {len(BLOCK) - 1} bytes"):
        asyncio.run(refused.get(f"{server}/block", attempts=1))
    refused.close()

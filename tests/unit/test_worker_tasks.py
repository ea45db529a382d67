"""Worker.run watches its own tasks: one that ends (a bug) is logged with its
traceback, the worker stops as on SIGTERM (flushing its sink) and reports it, so that
the command exits non-zero and supervisord restarts it, instead of running on with,
say, delivery reports no longer served."""

import asyncio
import logging

import pytest

from shared.config import ExchangeConfig, Runtime
from shared.sink import StdoutSink
from shared.stats import Stats
from shared.worker import Worker
from tests.harness import free_port
from workers.binance import Binance


class SinkWhoseLoopBreaks(StdoutSink):
    closed = False

    async def serve(self) -> None:
        await asyncio.sleep(0.2)
        raise RuntimeError("sink loop broke")

    def close(self, timeout_s: float) -> None:
        self.closed = True
        super().close(timeout_s)


def test_a_task_that_ends_stops_the_worker_and_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    nowhere = f"127.0.0.1:{free_port()}"  # refused: the worker keeps reconnecting meanwhile
    exchange = ExchangeConfig(ws_url=f"ws://{nowhere}/stream", rest_url=f"http://{nowhere}", symbols=["BTC-USDT"])
    runtime = Runtime(backoff_initial_s=0.1, backoff_max_s=0.2, rest_timeout_s=1)
    stats = Stats()
    sink = SinkWhoseLoopBreaks(stats)
    log = logging.getLogger("coinstream.test")
    worker = Worker(Binance(exchange.ws_url, exchange.rest_url), exchange, runtime, sink, stats, log)
    with caplog.at_level(logging.INFO, logger="coinstream.test"):
        assert asyncio.run(asyncio.wait_for(worker.run(), 10)) is False
    ended = [record for record in caplog.records if record.getMessage().startswith("task sink ended")]
    assert len(ended) == 1 and "sink loop broke" in ended[0].getMessage() and ended[0].exc_info
    assert sink.closed
    assert caplog.records[-1].getMessage() == "stopped"

"""The command line every worker shares: `python -m workers.<exchange> [options]`.

Errors a user can fix (bad arguments, bad config, Kafka unreachable or refusing the
credentials, a topic missing) print one line and exit non-zero, with no traceback. supervisord then marks the
worker FATAL after its start retries instead of restarting it forever.
"""

import argparse
import ctypes
import errno
import os
import signal
import socket
import sys
from collections.abc import Collection
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit

import uvloop

from shared import config as configuration
from shared.arguments import EXIT_USAGE, OneLineParser
from shared import log as logging_setup
from shared import metrics
from shared import capture
from shared.capture import Recorder
from shared.sink import KafkaSink, Sink, SinkError, StdoutSink
from shared.stats import Stats
from shared.venue import Venue
from shared.worker import Worker, channels_of

EXIT_CONFIG = 78  # EX_CONFIG from sysexits.h
EXIT_UNAVAILABLE = 69  # EX_UNAVAILABLE
EXIT_SOFTWARE = 70  # EX_SOFTWARE: one of the worker's own tasks ended (a bug)


def _arguments(name: str, argv: list[str] | None) -> argparse.Namespace:
    parser = OneLineParser(
        prog=f"python -m workers.{name}",
        description=f"Collect {name} tickers and order books into Kafka.",
    )
    parser.add_argument("--config", metavar="PATH", help="override file layered on config/ "
                        f"(default: ${configuration.ENV_OVERRIDE_FILE}, if set)")
    parser.add_argument("--sink", choices=("kafka", "stdout"), default="kafka",
                        help="kafka (default), or stdout: one record JSON per line")
    parser.add_argument("--record", metavar="FILE", type=Path,
                        help="append every raw frame and REST body received to FILE")
    parser.add_argument("--replay", metavar="FILE", type=Path,
                        help="feed a capture FILE through the parser instead of the network, then exit")
    return parser.parse_args(argv)


# prctl(2): the signal this process gets when the thread that started it dies.
PR_SET_PDEATHSIG = 1


def stop_with_parent() -> bool:
    """Ask Linux for SIGTERM when the process that started this one dies; False if it
    has died already.

    supervisord killed with SIGKILL leaves its workers running as orphans, beside the
    set a restarted supervisord starts: every record would arrive twice. With this the
    worker stops as on `supervisorctl stop` (flushed, or spooled for the next run).
    The parent may die before the request is made (the first getppid() then names
    whoever adopted the worker, and nothing tells it apart): a window of the
    interpreter's start-up, well under a second.
    """
    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")
    return os.getppid() == parent


def check_books(venue_class: type[Venue], exchange: configuration.ExchangeConfig,
                config: configuration.Config) -> None:
    """ConfigError for books this exchange's worker cannot collect; `coinstream check`
    asks it too, so that it refuses what the worker would."""
    name = venue_class.name
    if exchange.book_depth not in venue_class.book_depths:
        raise configuration.ConfigError(
            f"{config.origin('exchanges', name, 'book_depth')}: exchanges.{name}.book_depth: "
            f"{exchange.book_depth} levels; {name} serves {_depths(venue_class.book_depths)}")


def _depths(depths: Collection[int]) -> str:
    """1 to 5000, or 10, 25, 100."""
    if isinstance(depths, range) and len(depths) > 3:
        return f"{depths[0]} to {depths[-1]}"
    return ", ".join(map(str, depths))


def _capture_source(path: Path, config: configuration.Config) -> tuple[str, set[str]]:
    """The host:port the capture's first frame came from, and the exchanges configured
    there (none for a simulator's port that this config does not name)."""
    first = next((item for _, _, item in capture.read(path) if isinstance(item, capture.Captured)), None)
    if first is None:
        return "", set()
    source = urlsplit(first.url).netloc
    owners = {name for name, exchange in config.exchanges.items()
              if source in {urlsplit(url).netloc for url in (exchange.ws_url, exchange.rest_url, exchange.book_ws_url,
                                                             exchange.alternate_ws_url, exchange.alternate_rest_url)
                            if url}}
    return source, owners


def main(venue_class: type[Venue], argv: list[str] | None = None) -> None:
    name = venue_class.name
    arguments = _arguments(name, argv)
    log = logging_setup.setup(name)
    if not stop_with_parent():
        log.warning("the process that started this worker has exited; not starting")
        sys.exit(EXIT_UNAVAILABLE)

    def fail(code: int, message: str) -> NoReturn:
        print(f"coinstream {name}: error: {message}", file=sys.stderr)
        sys.exit(code)

    try:
        config = configuration.load(arguments.config)
        exchange = config.exchange(name)
        runtime = config.runtime_for(name)
        check_books(venue_class, exchange, config)
    except configuration.ConfigError as error:
        fail(EXIT_CONFIG, str(error))
    if arguments.replay is not None:
        if not arguments.replay.is_file():
            fail(EXIT_USAGE, f"--replay: {arguments.replay}: no such file")
        # Another exchange's frames would all be dead letters (with --sink kafka, in its topic).
        source, owners = _capture_source(arguments.replay, config)
        if owners and name not in owners:
            fail(EXIT_USAGE, f"--replay: {arguments.replay}: a capture of {', '.join(sorted(owners))} "
                             f"(its frames came from {source}), not of {name}")

    recorder = None
    if arguments.record:
        try:
            recorder = Recorder(arguments.record)
        except OSError as error:
            fail(EXIT_USAGE, f"--record: {arguments.record}: cannot open: {error.strerror}")

    stats = Stats()
    sink: Sink
    if arguments.sink == "stdout":
        sink = StdoutSink(stats)
    else:
        try:
            kafka_sink = KafkaSink(
                config.kafka.producer, config.ticker_topic(name), config.topics.dead_letter,
                config.kafka.spool, name, stats, log,
                book_topic=config.book_topic(name) if "book" in channels_of(exchange) else None,
            )
            kafka_sink.check_ready(timeout_s=runtime.rest_timeout_s)
        except SinkError as error:
            unreachable = "unreachable" in str(error)
            fail(EXIT_UNAVAILABLE if unreachable else EXIT_CONFIG,
                 f"{config.bootstrap_origin if unreachable else config.origin(*error.key)}: {error}")
        sink = kafka_sink

    venue = venue_class(exchange.ws_url, exchange.rest_url, exchange.book_ws_url)
    worker = Worker(venue, exchange, runtime, sink, stats, log, recorder)
    if arguments.replay is not None:
        worker.replay(arguments.replay)
        sink.close(runtime.stop_timeout_s)
        if recorder is not None:
            recorder.close()
        return
    host, port = config.metrics.host, config.metrics.ports[name]
    if port:
        try:
            metrics.serve(worker, host, port)
        except OSError as error:
            # A host that does not resolve, or is not this machine's, is the host's fault.
            if isinstance(error, socket.gaierror) or error.errno == errno.EADDRNOTAVAIL:
                key, advice = ("metrics", "host"), "a name or address of this machine"
            else:
                key, advice = ("metrics", "ports", name), "choose a free port, or 0 for no /metrics"
            fail(EXIT_CONFIG, f"{config.origin(*key)}: {'.'.join(key)}: cannot serve /metrics on {host}:{port}: "
                              f"{error.strerror or error} ({advice})")
    if not uvloop.run(worker.run()):
        sys.exit(EXIT_SOFTWARE)  # supervisord restarts the worker; its spool carries over

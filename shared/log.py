"""Logging for workers: one line per event, on stderr, which supervisord writes to the
worker's own log file. The line starts with the timestamp, the level and the exchange,
so that grep and journalctl habits work: `2026-11-24T06:15:57.123Z INFO binance ...`.
Every URL in a line is redacted: a ${VAR} secret may sit in its query string or userinfo.
"""

import logging
import re
import sys
import time


class _UtcFormatter(logging.Formatter):
    converter = time.gmtime

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", self.converter(record.created))
        return f"{stamp}.{int(record.msecs):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        return redact_urls(super().format(record))


# A URL in running text: it ends before the punctuation that follows it ("GET <url>: ...").
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]*[^\s'\"<>.,:;)\]]")


def redact_urls(text: str) -> str:
    """`text` with every URL in it redacted (see redacted)."""
    return _URL.sub(lambda match: redacted(match.group()), text) if "://" in text else text


def redacted(url: str) -> str:
    """`url` fit for a log line: the userinfo and every query value become ***.

    wss://user:pw@host/ws?token=abc&x=1 -> wss://***@host/ws?token=***&x=***
    """
    head, question, query = url.partition("?")
    scheme, separator, rest = head.partition("://")
    host, slash, path = rest.partition("/")
    if "@" in host:
        head = f"{scheme}{separator}***@{host.rpartition('@')[2]}{slash}{path}"
    if question:
        query = "&".join(f"{name}=***" if equals else "***"
                         for name, equals, _ in (item.partition("=") for item in query.split("&")))
    return head + question + query


def setup(exchange: str, level: int = logging.INFO) -> logging.Logger:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_UtcFormatter(f"%(asctime)s %(levelname)s {exchange} %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # websockets logs every handshake failure with a traceback; coinstream logs each
    # connection event itself, once, in one line.
    logging.getLogger("websockets").setLevel(logging.CRITICAL)
    return logging.getLogger("coinstream")


def cause(error: BaseException) -> str:
    """One line for a failure: the exception's type and the message of its innermost cause.

    requests' exceptions nest urllib3's, and each repeats the host and the URL:
    "ConnectionError: HTTPConnectionPool(host=...): Max retries exceeded with url: ...
    (Caused by NewConnectionError(...: [Errno 111] Connection refused))" becomes
    "ConnectionError: [Errno 111] Connection refused"; the caller names the URL once.
    """
    innermost = error
    for _ in range(10):  # causes nest a few deep; never follow a cycle forever
        arguments = innermost.args
        nested = (innermost.__cause__ or getattr(innermost, "reason", None)
                  or (arguments[0] if arguments and isinstance(arguments[0], BaseException) else None))
        if not isinstance(nested, BaseException):
            break
        innermost = nested
    return f"{type(error).__name__}: {str(innermost) or type(innermost).__name__}"


class Throttled:
    """Logs the first few events of a kind per interval; the counters carry the rest.

    A storm of bad frames must not become a storm of log lines: every event is
    still counted, and the once-a-minute counters line reports the totals.
    """

    def __init__(self, log: logging.Logger, per_interval: int = 5, interval_s: float = 60.0) -> None:
        self._log = log
        self._per_interval = per_interval
        self._interval_s = interval_s
        self._window_start = 0.0
        self._seen: dict[str, int] = {}

    def allow(self, kind: str) -> bool:
        """True for the first few events of `kind` in this interval."""
        now = time.monotonic()
        if now - self._window_start >= self._interval_s:
            self._window_start = now
            self._seen.clear()
        count = self._seen.get(kind, 0) + 1
        self._seen[kind] = count
        if count == self._per_interval + 1:
            self._log.warning("more %s this minute; see the counters line", kind)
        return count <= self._per_interval

    def warning(self, kind: str, message: str, *args: object) -> None:
        if self.allow(kind):
            self._log.warning(message, *args)


class ThrottleFilter(logging.Filter):
    """The same throttling for a library that logs through a Logger (librdkafka)."""

    def __init__(self, log: logging.Logger) -> None:
        super().__init__()
        self._throttled = Throttled(log)

    def filter(self, record: logging.LogRecord) -> bool:
        # librdkafka messages read "FAIL [thrd:...]: ...": the first word is the kind.
        return self._throttled.allow("kafka " + record.getMessage().split(" ", 1)[0])


class KeptLines(logging.Handler):
    """A handler that keeps the messages logged to it: what a librdkafka client made for a
    check said (shared.config)."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

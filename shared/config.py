"""Configuration: shipped YAML defaults, one optional override file, and the environment.

Layers, later wins:
  1. config/coinstream.yaml and config/exchanges/<name>.yaml, shipped with the code
     (users leave them as they are, so upgrades never conflict with local settings);
  2. an override file: --config PATH, else $COINSTREAM_CONFIG;
  3. $COINSTREAM_KAFKA_BOOTSTRAP_SERVERS for kafka.producer["bootstrap.servers"].
Any string value may name environment variables as ${NAME}, so secrets such as SASL
passwords stay out of files. The merged tree is converted into the Structs below; a
problem is reported as one ConfigError line naming the file, the key and what is wrong.
"""

import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import msgspec
import yaml
from confluent_kafka import KafkaException, Producer

from shared.log import KeptLines

EXCHANGES = (
    "upbit", "bithumb", "coinone", "korbit",
    "okx", "bybit", "gateio",
    "binance", "kraken", "coinbase",
)
CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"
DEFAULT_FILE = CONFIG_DIR / "coinstream.yaml"
EXCHANGE_DIR = CONFIG_DIR / "exchanges"
ENV_OVERRIDE_FILE = "COINSTREAM_CONFIG"
ENV_BOOTSTRAP = "COINSTREAM_KAFKA_BOOTSTRAP_SERVERS"
# Each worker serves Prometheus /metrics on its own port: 9301.. in EXCHANGES order.
FIRST_METRICS_PORT = 9301

# A duration is at most a week: longer ones mean "never" to a reader, but not to the
# libraries they reach (requests' socket timeout overflows time_t at 1e12 s).
WEEK_S = 7 * 24 * 3600.0
Seconds = Annotated[float, msgspec.Meta(gt=0, le=WEEK_S)]
UnifiedSymbol = Annotated[str, msgspec.Meta(pattern=r"^[A-Z0-9]+-[A-Z0-9]+$")]
Asset = Annotated[str, msgspec.Meta(pattern=r"^[A-Z0-9]+$")]
Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]


class ConfigError(Exception):
    """One line: '<file>: <key>: <problem>'."""


class Runtime(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    watchdog_s: Seconds = 30.0  # nothing heard on a socket (no frame, no pong) this long: reconnect
    rest_fallback_after_s: Seconds = 10.0  # nothing heard this long (down, not answering): poll REST
    # While a socket answers, its markets quiet this long are refreshed from REST this
    # often; a refreshed ticker is published only if a number changed. It also enables a
    # streaming socket's check after rest_fallback_after_s of silence. 0: never.
    rest_refresh_s: Annotated[float, msgspec.Meta(ge=0, le=WEEK_S)] = 300.0
    rest_poll_interval_s: Seconds = 2.0
    rest_timeout_s: Seconds = 10.0
    backoff_initial_s: Seconds = 1.0
    backoff_max_s: Seconds = 60.0
    stats_interval_s: Seconds = 60.0
    stop_timeout_s: Seconds = 20.0  # keep below supervisord's stopwaitsecs
    max_frame_bytes: Annotated[int, msgspec.Meta(gt=0)] = 4 * 1024 * 1024
    # Keepalive interval (protocol and application pings); unset: the exchange's own.
    ping_interval_s: Seconds | None = None
    # After a socket read, leave the socket unread for as long as frames_per_read frames
    # take to arrive at its current rate, at most read_pause_s, so that they are read and
    # handled together: fewer wakeups at low rates (CPU), up to read_pause_s more
    # latency; a fast feed is never paused (shared.worker.read_pause). read_pause_s 0:
    # read as soon as data arrives. On a small VM a wakeup costs more CPU than a frame's
    # work (bench/README.md).
    read_pause_s: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.02
    frames_per_read: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 20


class ExchangeConfig(msgspec.Struct, forbid_unknown_fields=True):
    ws_url: str
    rest_url: str
    # The same service on other hosts (a renamed exchange, a mirror), used after
    # repeated failures on ws_url / rest_url (see shared.hosts).
    alternate_ws_url: str | None = None
    alternate_rest_url: str | None = None
    # Where the book sockets connect, when the exchange serves books on another endpoint
    # than its tickers (Coinbase: the Advanced Trade feed); unset: ws_url. The alternate
    # host does not apply to it.
    book_ws_url: str | None = None
    # Exactly one of: an explicit list in unified form, or every market quoted in these.
    symbols: list[UnifiedSymbol] | None = None
    quotes: list[Asset] | None = None
    runtime: dict[str, Any] = {}
    # What the worker collects: tickers, order books, or both. Unset: both.
    channels: list[Literal["ticker", "book"]] | None = None
    # Levels a side of each book record (the top N); each exchange says which it serves
    # (shared.venue.Venue.book_depths), checked at the worker's start and by coinstream check.
    book_depth: Annotated[int, msgspec.Meta(ge=1)] = 10
    # The markets whose books are collected; unset: the ticker's (its symbols, or every
    # market of its quotes).
    book_symbols: list[UnifiedSymbol] | None = None


class Topics(msgspec.Struct, forbid_unknown_fields=True):
    ticker: str = "coinstream.ticker"
    dead_letter: str = "coinstream.dead-letter"
    # Per-exchange ticker topics, e.g. {upbit: korea.ticker}, to reproduce the seed's
    # regional topics. Exchanges not named use `ticker`.
    ticker_by_exchange: dict[str, str] = {}
    # Order book records (shared.record.Book), and per-exchange book topics like the ticker's.
    book: str = "coinstream.book"
    book_by_exchange: dict[str, str] = {}
    partitions: Annotated[int, msgspec.Meta(ge=1)] = 3
    replication_factor: Annotated[int, msgspec.Meta(ge=1)] = 1
    # Replicas that must hold a record before acks=all answers; unset: the broker's
    # min.insync.replicas. At most replication_factor.
    min_insync_replicas: Annotated[int, msgspec.Meta(ge=1)] | None = None


class Spool(msgspec.Struct, forbid_unknown_fields=True):
    """Where records wait on disk when Kafka is away longer than its queue can hold."""

    dir: str = "spool"  # relative to the worker's working directory (the repo under supervisord)
    max_mb: Annotated[int, msgspec.Meta(gt=0)] = 1024  # per exchange
    when_full: Literal["drop_oldest", "drop_newest"] = "drop_oldest"


class Kafka(msgspec.Struct, forbid_unknown_fields=True):
    producer: dict[str, str | int | float | bool]
    spool: Spool = msgspec.field(default_factory=Spool)
    # `make run` starts the bundled single-node broker when this is true.
    local_broker: bool = True


def _default_metrics_ports() -> dict[str, int]:
    return {name: FIRST_METRICS_PORT + index for index, name in enumerate(EXCHANGES)}


class Metrics(msgspec.Struct, forbid_unknown_fields=True):
    """Where each worker serves Prometheus /metrics (live runs only)."""

    host: Annotated[str, msgspec.Meta(min_length=1)] = "127.0.0.1"  # loopback: not exposed by default
    # Port per exchange; 0 serves no /metrics for that exchange.
    ports: dict[str, Port] = msgspec.field(default_factory=_default_metrics_ports)


class Config(msgspec.Struct, forbid_unknown_fields=True):
    kafka: Kafka
    topics: Topics = msgspec.field(default_factory=Topics)
    runtime: Runtime = msgspec.field(default_factory=Runtime)
    metrics: Metrics = msgspec.field(default_factory=Metrics)
    exchanges: dict[str, ExchangeConfig] = {}
    source_files: list[str] = []
    # Where kafka.producer's bootstrap.servers was set: a file, or $COINSTREAM_KAFKA_BOOTSTRAP_SERVERS.
    bootstrap_origin: str = ""
    # Each layer's file and tree, for origin().
    source_layers: list[tuple[str, dict[str, Any]]] = []

    def ticker_topic(self, exchange: str) -> str:
        return self.topics.ticker_by_exchange.get(exchange, self.topics.ticker)

    def book_topic(self, exchange: str) -> str:
        return self.topics.book_by_exchange.get(exchange, self.topics.book)

    def all_topics(self) -> list[str]:
        names = {self.topics.ticker, self.topics.dead_letter, *self.topics.ticker_by_exchange.values(),
                 self.topics.book, *self.topics.book_by_exchange.values()}
        return sorted(names)

    def origin(self, *path: str) -> str:
        """The file that set the value at `path` (the last layer that names it), for an
        error line about a value checked after loading (an exchange's book_depth)."""
        return _origin(path, self.source_layers)

    def exchange(self, name: str) -> ExchangeConfig:
        try:
            return self.exchanges[name]
        except KeyError:
            raise ConfigError(f"{self.source_files[-1]}: exchanges.{name}: missing") from None

    def runtime_for(self, name: str) -> Runtime:
        """The shared runtime settings with the exchange's own overrides applied."""
        overrides = self.exchange(name).runtime
        if not overrides:
            return self.runtime
        return msgspec.convert(
            msgspec.structs.asdict(self.runtime) | overrides, Runtime
        )


# librdkafka properties an AdminClient accepts from the producer's settings: the
# connection and security ones, not the producer-only ones (acks, linger.ms, ...).
_CONNECTION_PREFIXES = ("bootstrap.servers", "security.", "sasl.", "ssl.", "client.id", "socket.")


def client_settings(producer: Mapping[str, Any]) -> dict[str, Any]:
    """The producer's connection and security settings, for an admin client or a consumer."""
    return {key: value for key, value in producer.items() if key.startswith(_CONNECTION_PREFIXES)}


def load(override: str | os.PathLike[str] | None = None) -> Config:
    layers = [(str(DEFAULT_FILE), _read_yaml(DEFAULT_FILE))]
    for path in sorted(EXCHANGE_DIR.glob("*.yaml")):
        layers.append((str(path), {"exchanges": {path.stem: _read_yaml(path)}}))
    if override == "":  # --config "$SITE" with SITE unset: not the same as no --config
        raise ConfigError("--config: the path is empty")
    override = override or os.environ.get(ENV_OVERRIDE_FILE)
    if override:
        layers.append((str(override), _read_yaml(Path(override))))
    merged: dict[str, Any] = {}
    for _, tree in layers:
        merged = _deep_merge(merged, tree)
    bootstrap = os.environ.get(ENV_BOOTSTRAP)
    if bootstrap:
        merged.setdefault("kafka", {}).setdefault("producer", {})["bootstrap.servers"] = bootstrap
    merged = _expand_env(merged, layers, ())
    merged["source_files"] = [name for name, _ in layers]
    merged["bootstrap_origin"] = (f"${ENV_BOOTSTRAP}" if bootstrap
                                  else _origin(("kafka", "producer", "bootstrap.servers"), layers))
    # Exchanges are converted one by one: msgspec's error path hides mapping keys,
    # and the exchange's name is the part of the key a user needs most.
    exchanges = merged.pop("exchanges", {})
    metrics_ports = _pop_metrics_ports(merged, layers)
    try:
        config = msgspec.convert(merged, Config)
    except msgspec.ValidationError as error:
        raise ConfigError(_describe(error, merged, layers)) from None
    config.metrics.ports = _convert_metrics_ports(metrics_ports, layers)
    config.source_layers = layers
    if not isinstance(exchanges, dict):
        raise ConfigError(f"{_origin(('exchanges',), layers)}: exchanges: expected a mapping")
    for name, section in exchanges.items():
        config.exchanges[name] = _convert_exchange(str(name), section, layers)
    _check_topics(config, layers)
    _check_bootstrap_servers(config)
    _check_producer(config, layers)
    return config


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping (PyYAML keeps the
    last, so the first value would be dropped without a word)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *defaults`: the keys given beside it override the merged ones
            key = self.construct_object(key_node, deep=deep)
            try:
                if key in first_line:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r} (first on line {first_line[key] + 1})",
                        key_node.start_mark)
                first_line[key] = key_node.start_mark.line
            except TypeError:
                pass  # an unhashable key: the loader's own error names it below
        return super().construct_mapping(node, deep)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise ConfigError(f"{path}: line {line}: not UTF-8 text (byte {data[error.start]:#04x})") from None
    try:
        tree = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "?"
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(f"{path}: {where}: malformed YAML: {problem}") from None
    if tree is None:
        return {}
    if not isinstance(tree, dict):
        raise ConfigError(f"{path}: top level: expected a mapping, got {type(tree).__name__}")
    return tree


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    # An exchange's symbol choice is one setting in two spellings: a layer that
    # gives either one replaces the choice made below it.
    for either, other in (("symbols", "quotes"), ("quotes", "symbols")):
        if either in top:
            merged.pop(other, None)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _expand_env(node: Any, layers: list[tuple[str, dict[str, Any]]], path: tuple[str, ...]) -> Any:
    if isinstance(node, dict):
        return {key: _expand_env(value, layers, (*path, str(key))) for key, value in node.items()}
    if isinstance(node, list):
        return [_expand_env(value, layers, (*path, str(index))) for index, value in enumerate(node)]
    if isinstance(node, str):
        def substitute(match: re.Match[str]) -> str:
            value = os.environ.get(match.group(1))
            if value is None:
                key = ".".join(path)
                raise ConfigError(
                    f"{_origin(path, layers)}: {key}: environment variable {match.group(1)} is not set"
                )
            return value
        return _ENV_REF.sub(substitute, node)
    return node


def _origin(path: tuple[str, ...], layers: list[tuple[str, dict[str, Any]]]) -> str:
    """The file that set the value at `path`, the last layer winning. A value no file
    sets (a default) is blamed on the last file that holds most of its path, the one a
    user would set it in: for kafka.spool.dir the override file or coinstream.yaml, never
    an exchange's file."""
    best, best_depth = layers[-1][0], -1
    for name, tree in reversed(layers):
        node: Any = tree
        depth = 0
        for key in path:
            if not isinstance(node, dict) or key not in node:
                break
            node = node[key]
            depth += 1
        else:
            return name
        if depth > best_depth:
            best, best_depth = name, depth
    return best


_AT = re.compile(r"^(?P<problem>.*?)(?: - at `\$(?P<path>[^`]*)`)?$")
# A mapping's key of the wrong type: msgspec names the mapping, not the key.
_KEY_AT = re.compile(r"^.* - at `key` in `\$(?P<path>[^`]*)`$")
# One step of msgspec's path: .field, [index], or [...] for some entry of a mapping.
_STEP = re.compile(r"\.(?P<field>[^.\[]+)|\[(?P<index>[^\]]*)\]")
_GOT = re.compile(r", got `(?P<kind>[^`]*)`$")
_KINDS = {type(None): "null", bool: "bool", int: "int", float: "float", str: "str", list: "array", dict: "object"}
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<key>[^`]*)`$")
_MISSING = re.compile(r"^Object missing required field `(?P<key>[^`]*)`$")


def _describe(error: msgspec.ValidationError, tree: dict[str, Any], layers: list[tuple[str, dict[str, Any]]]) -> str:
    path, problem = _key_and_problem(error, tree)
    return f"{_origin(tuple(path), layers)}: {'.'.join(path) or 'top level'}: {problem}"


def _key_and_problem(error: msgspec.ValidationError, tree: Any) -> tuple[list[str], str]:
    """The key (as the file spells it, found in `tree`, what was converted) and the problem."""
    if key_at := _KEY_AT.match(str(error)):
        path = _path_in(tree, key_at.group("path"), "")
        key = next((key for key in _value_at(tree, path) or {} if not isinstance(key, str)), "?")
        return path, (f"key {key!r} is not text (YAML reads yes, no, on, off as booleans, digits as numbers: "
                      f"quote it)")
    match = _AT.match(str(error))
    assert match is not None  # the pattern matches any string
    problem = match.group("problem")
    got = _GOT.search(problem)
    path = _path_in(tree, match.group("path") or "", got.group("kind") if got else "")
    if got and got.group("kind") == "str" and re.search(r"`(int|float)", problem):
        problem += _number_as_text_hint(_value_at(tree, path))
    unknown = _UNKNOWN.match(problem)
    missing = _MISSING.match(problem)
    if unknown:
        path.append(unknown.group("key"))
        problem = "unknown key"
    elif missing:
        path.append(missing.group("key"))
        problem = "required key is missing"
    return path, problem


def _path_in(tree: Any, msgspec_path: str, got_kind: str) -> list[str]:
    """msgspec's path as keys; its [...] (an entry of a mapping) becomes the key of the
    first entry there of the kind msgspec got."""
    path: list[str] = []
    for step in _STEP.finditer(msgspec_path):
        if step.group("index") == "...":
            mapping = _value_at(tree, path)
            entry = next((str(key) for key, value in (mapping or {}).items()
                          if _KINDS.get(type(value)) == got_kind), None)
            if entry is None:
                break
            path.append(entry)
        else:
            path.append(step.group("field") or step.group("index"))
    return path


def _value_at(tree: Any, path: list[str]) -> Any:
    for key in path:
        if isinstance(tree, dict):
            tree = next((value for name, value in tree.items() if str(name) == key), None)
        elif isinstance(tree, list) and key.isdigit() and int(key) < len(tree):
            tree = tree[int(key)]
        else:
            return None
    return tree


def _number_as_text_hint(value: Any) -> str:
    """For a number read as text (1e9: YAML wants a dot; quoted; a ${VAR}), how to write it."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return ""
    if number.is_integer() and abs(number) < 1e16:
        spelling = str(int(number))
    else:
        spelling = yaml.safe_dump(number).removesuffix("\n...\n").strip()
    return f" ({value!r} is text: write {spelling}, unquoted; a ${{VAR}} is always text)"


def _convert_exchange(
    name: str, section: Any, layers: list[tuple[str, dict[str, Any]]]
) -> ExchangeConfig:
    where = _origin(("exchanges", name), layers)
    if name not in EXCHANGES:
        raise ConfigError(
            f"{where}: exchanges.{name}: unknown exchange (known: {', '.join(EXCHANGES)})"
        )
    if isinstance(section, dict):
        # Symbols and assets in any case: btc-krw is BTC-KRW.
        section = {key: [item.upper() if isinstance(item, str) else item for item in value]
                   if key in ("symbols", "quotes", "book_symbols") and isinstance(value, list) else value
                   for key, value in section.items()}
    try:
        exchange = msgspec.convert(section, ExchangeConfig)
    except msgspec.ValidationError as error:
        raise _section_error(("exchanges", name), error, section, layers) from None
    try:
        msgspec.convert(exchange.runtime, Runtime)
    except msgspec.ValidationError as error:
        raise _section_error(("exchanges", name, "runtime"), error, exchange.runtime, layers) from None
    if (exchange.symbols is None) == (exchange.quotes is None):
        raise ConfigError(
            f"{where}: exchanges.{name}: set exactly one of 'symbols' (a list such as "
            f"[BTC-USDT]) or 'quotes' (every market quoted in these, such as [KRW])"
        )
    for key, kind in _URL_KINDS.items():
        url = getattr(exchange, key)
        if url is not None and not _is_url(url, kind):
            raise ConfigError(f"{_origin(('exchanges', name, key), layers)}: exchanges.{name}.{key}: "
                              f"{url!r} is not {_URL_KIND_NAMES[kind]}")
    for key, chosen in (("symbols", exchange.symbols), ("quotes", exchange.quotes),
                        ("book_symbols", exchange.book_symbols), ("channels", exchange.channels)):
        where_key = f"{_origin(('exchanges', name, key), layers)}: exchanges.{name}.{key}"
        if chosen is not None and not chosen:
            raise ConfigError(f"{where_key}: the list is empty")
        items: list[str] = list(chosen or [])
        repeated = next((item for index, item in enumerate(items) if item in items[:index]), None)
        if repeated is not None:
            raise ConfigError(f"{where_key}: {repeated} is listed twice")
    return exchange


# Each URL of an exchange's section, and the scheme it needs ("ws": ws or wss).
_URL_KINDS = {"ws_url": "ws", "alternate_ws_url": "ws", "book_ws_url": "ws",
              "rest_url": "http", "alternate_rest_url": "http"}
_URL_KIND_NAMES = {"ws": "a ws:// or wss:// URL", "http": "an http:// or https:// URL"}


def _is_url(url: str, kind: str) -> bool:
    try:
        parts = urlsplit(url)
        return parts.scheme in (kind, f"{kind}s") and bool(parts.hostname) and (parts.port is None or parts.port > 0)
    except ValueError:  # an unclosed [IPv6 bracket, a port that is not a number
        return False


def _section_error(
    prefix: tuple[str, ...],
    error: msgspec.ValidationError,
    section: Any,
    layers: list[tuple[str, dict[str, Any]]],
) -> ConfigError:
    """A ValidationError from converting the section at `prefix`, as a one-line ConfigError."""
    path, problem = _key_and_problem(error, section)
    key_path = (*prefix, *path)
    return ConfigError(f"{_origin(key_path, layers)}: {'.'.join(key_path)}: {problem}")


def _pop_metrics_ports(merged: dict[str, Any], layers: list[tuple[str, dict[str, Any]]]) -> dict[Any, Any]:
    """Take metrics.ports out of the tree: converted per exchange, so an error can name it."""
    metrics = merged.get("metrics")
    if not isinstance(metrics, dict) or "ports" not in metrics:
        return {}  # absent, or not a mapping: the Config conversion reports it
    ports = metrics.pop("ports")
    if not isinstance(ports, dict):
        raise ConfigError(f"{_origin(('metrics', 'ports'), layers)}: metrics.ports: expected a mapping "
                          f"of exchange to port, such as {{kraken: 9309}}")
    return ports


def _convert_metrics_ports(ports: dict[Any, Any], layers: list[tuple[str, dict[str, Any]]]) -> dict[str, int]:
    def set_in(name: str) -> str:
        return _origin(("metrics", "ports", name), layers)

    converted = _default_metrics_ports()
    for name, value in ports.items():
        where = f"{set_in(str(name))}: metrics.ports.{name}"
        if name not in EXCHANGES:
            raise ConfigError(f"{where}: unknown exchange (known: {', '.join(EXCHANGES)})")
        try:
            converted[name] = msgspec.convert(value, Port)
        except msgspec.ValidationError as error:
            raise ConfigError(f"{where}: {error} (a TCP port, or 0 for no /metrics)") from None
    files = [name for name, _ in layers]
    owners: dict[int, str] = {}
    # Ports from earlier layers first, so a clash is reported where the later one was set.
    for name in sorted(converted, key=lambda name: files.index(set_in(name))):
        port = converted[name]
        if port and port in owners:
            raise ConfigError(f"{set_in(name)}: metrics.ports.{name}: port {port} is also "
                              f"{owners[port]}'s; each worker needs a port of its own")
        owners[port] = name
    return converted


# Kafka's rule for a topic name: 1 to 249 of these characters, and neither "." nor "..".
_TOPIC_NAME = re.compile(r"(?!\.\.?$)[A-Za-z0-9._-]{1,249}")


_TOPIC_KINDS = {"ticker": "ticker", "ticker_by_exchange": "ticker", "book": "book", "book_by_exchange": "book",
                "dead_letter": "dead-letter"}


def _check_topics(config: Config, layers: list[tuple[str, dict[str, Any]]]) -> None:
    topics = config.topics
    named = [(("topics", key), getattr(topics, key)) for key in ("ticker", "book", "dead_letter")]
    named += [(("topics", key, exchange), topic) for key in ("ticker_by_exchange", "book_by_exchange")
              for exchange, topic in getattr(topics, key).items()]
    # Each topic holds one kind of record: verify follows a run's seq in each topic, and a
    # consumer decodes one schema from it.
    kind_of: dict[str, str] = {}
    for path, topic in named:
        if not _TOPIC_NAME.fullmatch(topic):
            raise ConfigError(f"{_origin(path, layers)}: {'.'.join(path)}: {topic!r} is not a Kafka topic name "
                              f"(1 to 249 of a-z A-Z 0-9 . _ -, not . or ..)")
        kind = _TOPIC_KINDS[path[1]]
        if kind_of.setdefault(topic, kind) != kind:
            raise ConfigError(f"{_origin(path, layers)}: {'.'.join(path)}: {topic} is also a {kind_of[topic]} topic; "
                              f"tickers, books and dead letters each need topics of their own")
    if topics.min_insync_replicas is not None and topics.min_insync_replicas > topics.replication_factor:
        where = _origin(("topics", "min_insync_replicas"), layers)
        raise ConfigError(f"{where}: topics.min_insync_replicas: {topics.min_insync_replicas} is more than "
                          f"topics.replication_factor ({topics.replication_factor}): no record could ever "
                          f"be acknowledged")
    for key in ("ticker_by_exchange", "book_by_exchange"):
        for name in getattr(config.topics, key):
            if name not in EXCHANGES:
                where = _origin(("topics", key, name), layers)
                raise ConfigError(f"{where}: topics.{key}.{name}: unknown exchange")


# An entry of bootstrap.servers as librdkafka reads it: [protocol://]host[:port], the host
# a name, an IPv4 address or an [IPv6] one.
_BROKER_ADDRESS = re.compile(r"(?:[A-Za-z_]+://)?(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::(?P<port>[0-9]{1,5}))?")


BOOTSTRAP_SERVERS_FORM = "a list of host:port, such as kafka1:9092,kafka2:9092"


def is_bootstrap_servers(servers: object) -> bool:
    """Whether librdkafka can read `servers` as bootstrap.servers. It takes any string,
    and an address it cannot parse was then reported as "Kafka unreachable" (exit 69, as
    for a broker that is down)."""
    if not isinstance(servers, str):
        return False
    addresses = [_BROKER_ADDRESS.fullmatch(entry.strip()) for entry in servers.split(",")]
    return all(address and 0 < int(address["port"] or 1) < 65536 for address in addresses)


def _check_bootstrap_servers(config: Config) -> None:
    servers = config.kafka.producer.get("bootstrap.servers")
    if servers is not None and not is_bootstrap_servers(servers):
        raise ConfigError(f"{config.bootstrap_origin}: kafka.producer.bootstrap.servers: {servers!r} is not "
                          f"{BOOTSTRAP_SERVERS_FORM}")


def _check_producer(config: Config, layers: list[tuple[str, dict[str, Any]]]) -> None:
    # The sink sets delivery.report.only.error itself (shared.sink.DELIVERY_REPORTS): it
    # counts and times deliveries from the producer's queue and reads the failures'
    # reports, and either value set here would silently lose one of the two.
    if "delivery.report.only.error" in config.kafka.producer:
        where = _origin(("kafka", "producer", "delivery.report.only.error"), layers)
        raise ConfigError(f"{where}: kafka.producer.delivery.report.only.error: set by coinstream itself "
                          f"(deliveries are counted from the producer's queue, failures from their reports); remove it")
    producer = config.kafka.producer
    refusal = _librdkafka_refusal(producer)
    if refusal is None:
        return
    if isinstance(refusal, list):
        # librdkafka takes these and ignores them, with a warning lost among its start-up lines.
        key = refusal[0]
        raise ConfigError(f"{_origin(('kafka', 'producer', key), layers)}: kafka.producer.{key}: a consumer "
                          f"property, which the producer ignores; remove it")
    # librdkafka's message may name another spelling (linger.ms is queue.buffering.max.ms):
    # name the key as the file spells it, when one key alone is refused.
    for key, value in producer.items():
        if key != "bootstrap.servers" and isinstance(alone := _librdkafka_refusal({key: value}), str):
            named = _NAMED_PROPERTY.search(alone)
            if named and named.group("key") != key:
                alone += f" (librdkafka's name for {key})"
            raise ConfigError(f"{_origin(('kafka', 'producer', key), layers)}: kafka.producer.{key}: {alone}")
    raise ConfigError(f"{_origin(('kafka', 'producer'), layers)}: kafka.producer: {refusal}")


# For a librdkafka client made only to check something (settings, readiness): its log
# lines are not the user's concern.
UNHEARD = logging.Logger("coinstream.librdkafka.unheard")
UNHEARD.addHandler(logging.NullHandler())


def _librdkafka_refusal(producer: Mapping[str, Any]) -> str | list[str] | None:
    """Why librdkafka refuses these producer settings, or the consumer properties among
    them (which it takes, and ignores), or None: a producer is made with them, as the
    worker makes its own, but without bootstrap.servers, so it connects to nothing, and
    dropped (~15 ms)."""
    settings = {key: value for key, value in producer.items() if key != "bootstrap.servers"}
    heard = KeptLines()
    logger = logging.Logger("coinstream.librdkafka.checked")
    logger.addHandler(heard)
    try:
        Producer({**settings, "logger": logger}).poll(0)  # poll: librdkafka's log lines are served
    except KafkaException as error:
        return str(error.args[0].str())
    except (TypeError, ValueError) as error:  # a Python-side setting (on_delivery...) that is not a callable
        return str(error)
    consumer_only = [match.group("key") for line in heard.lines if (match := _CONSUMER_PROPERTY.search(line))]
    return consumer_only or None


# The property a librdkafka refusal names, perhaps by another spelling than the file's.
_NAMED_PROPERTY = re.compile(r'configuration property "(?P<key>[^"]+)"')
# librdkafka's CONFWARN line for a consumer property given to a producer.
_CONSUMER_PROPERTY = re.compile(r"Configuration property (?P<key>\S+) is a consumer property")

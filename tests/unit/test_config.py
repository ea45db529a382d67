"""Bad configuration files get one ConfigError line naming the file, the key (or the
line) and what is wrong: never a traceback, never a value silently taken."""

from pathlib import Path

import pytest

from shared import config as configuration


def refusal(tmp_path: Path, content: bytes) -> str:
    override = tmp_path / "site.yaml"
    override.write_bytes(content)
    with pytest.raises(configuration.ConfigError) as refused:
        configuration.load(override)
    return str(refused.value)


@pytest.mark.parametrize("content, problem", [
    # A UnicodeDecodeError traceback: the file is read as UTF-8, and only OSError was caught.
    (b"runtime:\n  watchdog_s: 5  # \xff\n", "line 2: not UTF-8 text (byte 0xff)"),
    # PyYAML keeps the last of two equal keys: the first value was silently dropped.
    (b"runtime:\n  watchdog_s: 5\n  watchdog_s: 6\n",
     "line 3: malformed YAML: duplicate key 'watchdog_s' (first on line 2)"),
    (b"exchanges:\n  kraken: {book_depth: 25}\n  kraken: {book_depth: 100}\n",
     "line 3: malformed YAML: duplicate key 'kraken' (first on line 2)"),
])
def test_an_unreadable_file_is_one_line_naming_the_line(tmp_path: Path, content: bytes, problem: str) -> None:
    assert refusal(tmp_path, content) == f"{tmp_path / 'site.yaml'}: {problem}"


def test_keys_beside_a_merge_key_override_the_merged_ones(tmp_path: Path) -> None:
    override = tmp_path / "site.yaml"
    override.write_text("exchanges:\n  kraken: &kraken {book_depth: 25, channels: [book]}\n"
                        "  binance: {<<: *kraken, book_depth: 20, symbols: [BTC-USDT]}\n")
    binance = configuration.load(override).exchange("binance")
    assert (binance.book_depth, binance.channels) == (20, ["book"])


@pytest.mark.parametrize("yaml_text, problem", [
    # Each was taken: a worker then failed at its first connect (a traceback and exit 70
    # for a URL; "Kafka unreachable", exit 69, for an address), or Kafka refused the topic.
    ("exchanges: {kraken: {ws_url: 'not a url'}}",
     "exchanges.kraken.ws_url: 'not a url' is not a ws:// or wss:// URL"),
    ("exchanges: {coinbase: {book_ws_url: 'https://advanced-trade-ws.coinbase.com'}}",
     "exchanges.coinbase.book_ws_url: 'https://advanced-trade-ws.coinbase.com' is not a ws:// or wss:// URL"),
    ("exchanges: {kraken: {rest_url: 'ftp://api.kraken.com'}}",
     "exchanges.kraken.rest_url: 'ftp://api.kraken.com' is not an http:// or https:// URL"),
    ("exchanges: {korbit: {alternate_rest_url: 'https://'}}",
     "exchanges.korbit.alternate_rest_url: 'https://' is not an http:// or https:// URL"),
    ("kafka: {producer: {bootstrap.servers: 'not a host::::'}}",
     "kafka.producer.bootstrap.servers: 'not a host::::' is not a list of host:port, such as kafka1:9092,kafka2:9092"),
    ("kafka: {producer: {bootstrap.servers: ''}}",
     "kafka.producer.bootstrap.servers: '' is not a list of host:port, such as kafka1:9092,kafka2:9092"),
    ("kafka: {producer: {bootstrap.servers: 'kafka1:9092,kafka2:99999'}}",
     "kafka.producer.bootstrap.servers: 'kafka1:9092,kafka2:99999' is not a list of host:port, "
     "such as kafka1:9092,kafka2:9092"),
    ("kafka: {producer: {bootstrap.servers: 9092}}",
     "kafka.producer.bootstrap.servers: 9092 is not a list of host:port, such as kafka1:9092,kafka2:9092"),
    ("topics: {ticker: 'my ticks!'}",
     "topics.ticker: 'my ticks!' is not a Kafka topic name (1 to 249 of a-z A-Z 0-9 . _ -, not . or ..)"),
    ("topics: {book: ''}",
     "topics.book: '' is not a Kafka topic name (1 to 249 of a-z A-Z 0-9 . _ -, not . or ..)"),
    ("topics: {dead_letter: '..'}",
     "topics.dead_letter: '..' is not a Kafka topic name (1 to 249 of a-z A-Z 0-9 . _ -, not . or ..)"),
    (f"topics: {{book_by_exchange: {{okx: {'b' * 250}}}}}",
     f"topics.book_by_exchange.okx: '{'b' * 250}' is not a Kafka topic name "
     "(1 to 249 of a-z A-Z 0-9 . _ -, not . or ..)"),
    # Every exchange's section was dropped: check said ok, then each worker exited 78.
    ("exchanges: null", "exchanges: expected a mapping"),
])
def test_a_value_that_cannot_work_is_refused_in_one_line(tmp_path: Path, yaml_text: str, problem: str) -> None:
    assert refusal(tmp_path, yaml_text.encode()) == f"{tmp_path / 'site.yaml'}: {problem}"


@pytest.mark.parametrize("servers", [
    "127.0.0.1:19092", "kafka1:9092,kafka2:9092", "kafka1:9092, kafka2:9092", "kafka.example",
    "SASL_SSL://broker-1.example.com:9093", "[::1]:9092",
])
def test_bootstrap_servers_in_the_forms_librdkafka_takes_are_accepted(tmp_path: Path, servers: str) -> None:
    override = tmp_path / "site.yaml"
    override.write_text(f"kafka: {{producer: {{bootstrap.servers: '{servers}'}}}}\n")
    assert configuration.load(override).kafka.producer["bootstrap.servers"] == servers


def test_a_bootstrap_address_from_the_environment_is_checked_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(configuration.ENV_OVERRIDE_FILE, raising=False)
    monkeypatch.setenv(configuration.ENV_BOOTSTRAP, "bad host::")
    with pytest.raises(configuration.ConfigError) as refused:
        configuration.load()
    assert str(refused.value) == (f"${configuration.ENV_BOOTSTRAP}: kafka.producer.bootstrap.servers: 'bad host::' "
                                  "is not a list of host:port, such as kafka1:9092,kafka2:9092")


@pytest.mark.parametrize("yaml_text, problem", [
    # msgspec names a mapping's entry [...]: the line named the section, not the key.
    ("kafka: {producer: {linger.ms: null}}",
     "kafka.producer.linger.ms: Expected `bool | int | float | str`, got `null`"),
    ("kafka: {producer: {ssl.ca.location: [a, b]}}",
     "kafka.producer.ssl.ca.location: Expected `bool | int | float | str`, got `array`"),
    ("topics: {ticker_by_exchange: {upbit: korea.ticker, kraken: null}}",
     "topics.ticker_by_exchange.kraken: Expected `str`, got `null`"),
    # A key YAML reads as a boolean or a number: "Expected `str` - at `key` in `$`".
    ("exchanges: {kraken: {yes: 1}}",
     "exchanges.kraken: key True is not text (YAML reads yes, no, on, off as booleans, digits as numbers: quote it)"),
    ("kafka: {producer: {1: 5}}",
     "kafka.producer: key 1 is not text (YAML reads yes, no, on, off as booleans, digits as numbers: quote it)"),
    # YAML reads 1e9 (no dot) as a string: "got `str`" for what the user wrote as a number.
    ("runtime: {stop_timeout_s: 1e9}",
     "runtime.stop_timeout_s: Expected `float`, got `str` ('1e9' is text: write 1000000000, unquoted; "
     "a ${VAR} is always text)"),
    ("exchanges: {kraken: {runtime: {watchdog_s: '30'}}}",
     "exchanges.kraken.runtime.watchdog_s: Expected `float`, got `str` ('30' is text: write 30, unquoted; "
     "a ${VAR} is always text)"),
])
def test_a_wrong_type_names_the_key_the_file_spells(tmp_path: Path, yaml_text: str, problem: str) -> None:
    assert refusal(tmp_path, yaml_text.encode()) == f"{tmp_path / 'site.yaml'}: {problem}"


def test_an_empty_config_path_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """`--config "$SITE"` with SITE unset loaded the shipped defaults without a word."""
    monkeypatch.delenv(configuration.ENV_OVERRIDE_FILE, raising=False)
    with pytest.raises(configuration.ConfigError) as refused:
        configuration.load("")
    assert str(refused.value) == "--config: the path is empty"


@pytest.mark.parametrize("yaml_text, key", [
    # Taken; the worker's first REST call then ended it: "OverflowError: timestamp out of
    # range for platform time_t", a traceback and exit 70, restarted by supervisord forever.
    ("runtime: {rest_timeout_s: 1.0e+12}", "runtime.rest_timeout_s"),
    ("runtime: {watchdog_s: 1.0e+308}", "runtime.watchdog_s"),
    ("runtime: {stop_timeout_s: .inf}", "runtime.stop_timeout_s"),
    ("runtime: {rest_refresh_s: .inf}", "runtime.rest_refresh_s"),
    ("runtime: {ping_interval_s: .inf}", "runtime.ping_interval_s"),
    ("exchanges: {kraken: {runtime: {backoff_max_s: 1.0e+100}}}", "exchanges.kraken.runtime.backoff_max_s"),
])
def test_a_duration_beyond_a_week_is_refused(tmp_path: Path, yaml_text: str, key: str) -> None:
    assert refusal(tmp_path, yaml_text.encode()) == f"{tmp_path / 'site.yaml'}: {key}: Expected `float` <= 604800.0"


@pytest.mark.parametrize("yaml_text, problem", [
    # Taken: two kinds of record in one topic, each run's ticker and book seq in one
    # sequence (verify: repeats), dead letters among tickers (live: undecodable records).
    ("topics: {book: coinstream.ticker}",
     "topics.book: coinstream.ticker is also a ticker topic; tickers, books and dead letters each need topics of "
     "their own"),
    ("topics: {dead_letter: coinstream.book}",
     "topics.dead_letter: coinstream.book is also a book topic; tickers, books and dead letters each need topics of "
     "their own"),
    ("topics: {ticker_by_exchange: {upbit: korea}, book_by_exchange: {bithumb: korea}}",
     "topics.book_by_exchange.bithumb: korea is also a ticker topic; tickers, books and dead letters each need "
     "topics of their own"),
])
def test_tickers_books_and_dead_letters_never_share_a_topic(tmp_path: Path, yaml_text: str, problem: str) -> None:
    assert refusal(tmp_path, yaml_text.encode()) == f"{tmp_path / 'site.yaml'}: {problem}"


def test_exchanges_may_share_a_ticker_topic(tmp_path: Path) -> None:
    override = tmp_path / "site.yaml"
    override.write_text("topics: {ticker_by_exchange: {upbit: korea, bithumb: korea}}\n")
    assert configuration.load(override).ticker_topic("bithumb") == "korea"


@pytest.mark.parametrize("yaml_text, problem", [
    # Taken: the worker counted the market twice and subscribed to it twice, which Kraken
    # answers "Already subscribed" at every connect.
    ("exchanges: {kraken: {symbols: [BTC-USD, ETH-USD, btc-usd]}}",
     "exchanges.kraken.symbols: BTC-USD is listed twice"),
    ("exchanges: {upbit: {quotes: [KRW, krw]}}", "exchanges.upbit.quotes: KRW is listed twice"),
    ("exchanges: {okx: {book_symbols: [BTC-USDT, BTC-USDT]}}", "exchanges.okx.book_symbols: BTC-USDT is listed twice"),
    ("exchanges: {okx: {channels: [book, book]}}", "exchanges.okx.channels: book is listed twice"),
])
def test_a_list_item_given_twice_is_refused(tmp_path: Path, yaml_text: str, problem: str) -> None:
    assert refusal(tmp_path, yaml_text.encode()) == f"{tmp_path / 'site.yaml'}: {problem}"


def test_a_default_value_is_blamed_on_the_file_a_user_would_set_it_in(tmp_path: Path) -> None:
    """An error about a value no file sets (the spool directory, by default) names the
    last file that holds most of its key: coinstream.yaml, or an override with a kafka
    section; never an exchange's file, which cannot hold it (the last file read)."""
    shipped = configuration.load()
    assert shipped.source_files[-1].endswith("upbit.yaml")
    assert shipped.origin("kafka", "spool", "dir") == str(configuration.DEFAULT_FILE)
    override = tmp_path / "site.yaml"
    override.write_text("kafka:\n  producer:\n    linger.ms: 5\n")
    assert configuration.load(override).origin("kafka", "spool", "dir") == str(override)
    override.write_text("runtime:\n  watchdog_s: 30\n")
    assert configuration.load(override).origin("kafka", "spool", "dir") == str(configuration.DEFAULT_FILE)
    assert configuration.load(override).origin("runtime", "watchdog_s") == str(override)


@pytest.mark.parametrize("producer, key", [
    ("group.id: mine", "group.id"),
    ("linger.ms: 5\n    auto.offset.reset: earliest", "auto.offset.reset"),
])
def test_a_consumer_property_among_the_producers_is_refused(tmp_path: Path, producer: str, key: str) -> None:
    """librdkafka takes a consumer property in a producer's settings and ignores it, with
    a warning among its start-up lines: the user meant something that will not happen."""
    override = tmp_path / "site.yaml"
    override.write_text(f"kafka:\n  producer:\n    {producer}\n")
    with pytest.raises(configuration.ConfigError) as refused:
        configuration.load(override)
    assert str(refused.value) == (f"{override}: kafka.producer.{key}: a consumer property, which the producer "
                                  f"ignores; remove it")

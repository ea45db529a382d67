"""coinstream check refuses the librdkafka producer properties the worker would refuse
(it said ok for kafka.producer.lingr.ms, then the worker exited 78): one line naming the
file and the key, exit 78, and no connection to Kafka."""

import socket
from pathlib import Path

import pytest

from coinstream import check, run, topics
from shared import config as configuration
from tests.harness import free_port


def run_check(tmp_path: Path, yaml_text: str, capsys: pytest.CaptureFixture[str]) -> tuple[int | str | None, str]:
    override = tmp_path / "site.yaml"
    override.write_text(yaml_text)
    with pytest.raises(SystemExit) as exited:
        check.main(["--config", str(override)])
        raise SystemExit(0)
    return exited.value.code, capsys.readouterr().err


@pytest.mark.parametrize("yaml_text, problem", [
    ("kafka: {producer: {lingr.ms: 5}}\n", 'kafka.producer.lingr.ms: No such configuration property: "lingr.ms"'),
    # librdkafka names linger.ms by its alias; the line names the key as the file spells it.
    ("kafka: {producer: {linger.ms: soon}}\n",
     'kafka.producer.linger.ms: Invalid value for configuration property "queue.buffering.max.ms" '
     "(librdkafka's name for linger.ms)"),
    ("kafka: {producer: {compression.type: zip}}\n",
     'kafka.producer.compression.type: Invalid value "zip" for configuration property "compression.codec" '
     "(librdkafka's name for compression.type)"),
    # Refused only together with the shipped enable.idempotence: the section is named.
    ("kafka: {producer: {acks: 1}}\n",
     "kafka.producer: Failed to create producer: `acks` must be set to `all` when `enable.idempotence` is true"),
])
def test_check_refuses_librdkafka_properties_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                         yaml_text: str, problem: str) -> None:
    code, err = run_check(tmp_path, yaml_text, capsys)
    assert code == 78
    assert err == f"coinstream check: error: {tmp_path / 'site.yaml'}: {problem}\n"


def test_check_validates_without_connecting(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as broker:
        broker.bind(("127.0.0.1", 0))
        broker.listen()
        broker.settimeout(1.0)
        port = broker.getsockname()[1]
        code, err = run_check(tmp_path, f"kafka: {{producer: {{bootstrap.servers: '127.0.0.1:{port}'}}}}\n", capsys)
        assert (code, err) == (0, "")
        with pytest.raises(TimeoutError):
            broker.accept()


def test_check_says_what_it_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Which Kafka, which exchanges and which files, a line each: one line of them all was
    400 characters long."""
    override = tmp_path / "site.yaml"
    override.write_text("kafka: {local_broker: false, producer: {bootstrap.servers: 'kafka-1:9092'}}\n")
    check.main(["--config", str(override)])
    lines = capsys.readouterr().out.splitlines()
    assert lines[:3] == ["config ok", "  kafka      kafka-1:9092",
                         "  exchanges  binance, bithumb, bybit, coinbase, coinone, gateio, korbit, kraken, okx, upbit "
                         "(10)"]
    assert lines[3].split()[:2] == ["read", "from"] and lines[3].endswith("config/coinstream.yaml")
    assert lines[-1].strip() == str(override)
    assert max(map(len, lines)) <= 120


def test_symbols_and_quotes_are_case_insensitive(tmp_path: Path) -> None:
    override = tmp_path / "site.yaml"
    override.write_text("exchanges: {upbit: {symbols: [btc-krw, Eth-Krw]}, okx: {quotes: [usdt]}}\n")
    loaded = configuration.load(override)
    assert loaded.exchange("upbit").symbols == ["BTC-KRW", "ETH-KRW"]
    assert loaded.exchange("okx").quotes == ["USDT"]


@pytest.mark.parametrize("exchange, depth, served", [
    ("kraken", 20, "10, 25, 100, 500, 1000"),
    ("okx", 500, "1 to 400"),
    ("binance", 6000, "1 to 5000"),
    ("upbit", 31, "1 to 30"),
])
def test_check_refuses_a_book_depth_the_exchange_does_not_serve(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], exchange: str, depth: int, served: str) -> None:
    """It said ok; the worker then exited 78 and supervisord left it FATAL."""
    code, err = run_check(tmp_path, f"exchanges: {{{exchange}: {{book_depth: {depth}}}}}\n", capsys)
    assert code == 78
    assert err == (f"coinstream check: error: {tmp_path / 'site.yaml'}: exchanges.{exchange}.book_depth: "
                   f"{depth} levels; {exchange} serves {served}\n")


def test_run_refuses_it_before_starting_anything(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """`coinstream run` validates as check does, before the broker and supervisord."""
    # run.main sets it. Set here so that monkeypatch removes it after: a delenv of an unset
    # variable records nothing, and the test's site.yaml leaked into every later load()
    # of the same pytest worker (test_config's default-origin test failed, order-dependent).
    monkeypatch.setenv(configuration.ENV_OVERRIDE_FILE, "")
    # Past the check, run would start a broker and exec supervisord in this process.
    monkeypatch.setattr(run, "local_broker_port", lambda config: pytest.fail("run went past the check"))
    override = tmp_path / "site.yaml"
    override.write_text("exchanges: {kraken: {book_depth: 20}}\n")
    with pytest.raises(SystemExit) as exited:
        run.main(["--config", str(override)])
    assert exited.value.code == 78
    assert capsys.readouterr() == ("", f"coinstream run: error: {override}: exchanges.kraken.book_depth: "
                                       "20 levels; kraken serves 10, 25, 100, 500, 1000\n")


def test_check_refuses_a_local_broker_on_a_remote_address(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """check said ok; `coinstream run` then refused the same file (exit 78)."""
    code, err = run_check(tmp_path, "kafka: {producer: {bootstrap.servers: 'kafka.example:9092'}}\n", capsys)
    assert code == 78
    assert err == (f"coinstream check: error: {tmp_path / 'site.yaml'}: kafka.local_broker: true, but "
                   "kafka.producer.bootstrap.servers=kafka.example:9092 is not a local address with its port "
                   "(127.0.0.1:PORT); set local_broker: false to use that cluster\n")


def test_a_remote_address_from_the_environment_names_the_environment(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """COINSTREAM_KAFKA_BOOTSTRAP_SERVERS alone, local_broker left true: the line named the
    last file loaded (config/exchanges/upbit.yaml), which sets neither."""
    monkeypatch.setenv("COINSTREAM_KAFKA_BOOTSTRAP_SERVERS", "kafka1.internal:9093")
    code, err = run_check(tmp_path, "runtime: {}\n", capsys)
    assert code == 78
    assert err == ("coinstream check: error: $COINSTREAM_KAFKA_BOOTSTRAP_SERVERS: kafka.local_broker: true, but "
                   "kafka.producer.bootstrap.servers=kafka1.internal:9093 is not a local address with its port "
                   "(127.0.0.1:PORT); set kafka.local_broker: false in an override file (--config) to use that "
                   "cluster\n")


@pytest.mark.parametrize("yaml_text, key, seconds, exchange", [
    # Taken: on a stop while Kafka is slow (it keeps the flush budget while it answers),
    # supervisord's SIGKILL at stopwaitsecs came first, and the queue was lost, not spooled.
    ("runtime: {stop_timeout_s: 60}\n", "runtime.stop_timeout_s", 60, "binance"),
    ("runtime: {stop_timeout_s: 25}\n", "runtime.stop_timeout_s", 25, "binance"),
    ("exchanges: {okx: {runtime: {stop_timeout_s: 40}}}\n", "exchanges.okx.runtime.stop_timeout_s", 40, "okx"),
])
def test_check_refuses_a_stop_timeout_supervisord_would_cut_short(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], yaml_text: str, key: str, seconds: int,
        exchange: str) -> None:
    code, err = run_check(tmp_path, yaml_text, capsys)
    assert code == 78
    assert err == (f"coinstream check: error: {tmp_path / 'site.yaml'}: {key}: {seconds} s, and up to 5 s for "
                   f"the purged records' reports, is not within stopwaitsecs=30 of [program:{exchange}] in "
                   f"{check.SUPERVISOR_CONF}: a stop while Kafka is slow would be killed before spooling its queue\n")


def test_topics_with_kafka_unreachable_exits_69_naming_where_the_address_was_set(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """It exited 78, a config error, and named the last file whichever set the address."""
    monkeypatch.delenv(configuration.ENV_OVERRIDE_FILE, raising=False)
    address = f"127.0.0.1:{free_port()}"
    monkeypatch.setenv(configuration.ENV_BOOTSTRAP, address)
    monkeypatch.setattr(topics.ensure, "__defaults__", (1.0,))  # librdkafka tries for timeout_s (30 s)
    with pytest.raises(SystemExit) as exited:
        topics.main([])
    assert exited.value.code == 69
    assert capsys.readouterr().err == (f"coinstream topics: error: ${configuration.ENV_BOOTSTRAP}: "
                                       f"kafka.producer.bootstrap.servers: Kafka unreachable at {address}: "
                                       "Failed to get metadata: Local: Broker transport failure\n")


def test_check_refuses_a_spool_directory_the_workers_cannot_write(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """check said ok; every worker then exited 78 under supervisord ('not writable')."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code, err = run_check(tmp_path, f"kafka: {{spool: {{dir: '{blocker / 'spool'}'}}}}\n", capsys)
    assert code == 78
    assert err == (f"coinstream check: error: {tmp_path / 'site.yaml'}: kafka.spool.dir: the spool directory "
                   f"{blocker / 'spool'} is not writable: Not a directory\n")
    assert not (blocker.parent / "spool").exists()

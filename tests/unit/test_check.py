"""coinstream check refuses the librdkafka producer properties the worker would refuse
(it said ok for kafka.producer.lingr.ms, then the worker exited 78): one line naming the
file and the key, exit 78, and no connection to Kafka."""

import socket
from pathlib import Path

import pytest

from coinstream import check
from shared import config as configuration


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
     'kafka.producer.linger.ms: Invalid value for configuration property "queue.buffering.max.ms"'),
    ("kafka: {producer: {compression.type: zip}}\n",
     'kafka.producer.compression.type: Invalid value "zip" for configuration property "compression.codec"'),
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


def test_symbols_and_quotes_are_case_insensitive(tmp_path: Path) -> None:
    override = tmp_path / "site.yaml"
    override.write_text("exchanges: {upbit: {symbols: [btc-krw, Eth-Krw]}, okx: {quotes: [usdt]}}\n")
    loaded = configuration.load(override)
    assert loaded.exchange("upbit").symbols == ["BTC-KRW", "ETH-KRW"]
    assert loaded.exchange("okx").quotes == ["USDT"]

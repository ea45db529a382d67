"""Security guarantees: TLS is verified on every exchange connection, frames are capped
in size, and secrets given through the environment never reach a log."""

import asyncio
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from websockets.asyncio.server import serve

from tests.harness import free_port, override_file, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def self_signed_tls_server(tmp_path: Path) -> Iterator[tuple[int, list[str]]]:
    """A WebSocket + HTTPS server on 127.0.0.1 with a self-signed certificate for 127.0.0.1;
    yields its port and the list of request paths it saw completing a TLS handshake."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    port = free_port()
    seen: list[str] = []
    loop = asyncio.new_event_loop()
    stop = loop.create_future()

    async def handler(socket: Any) -> None:
        seen.append(socket.request.path)
        await socket.close()

    async def main() -> None:
        async with serve(handler, "127.0.0.1", port, ssl=context):
            await stop

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    time.sleep(0.5)
    yield port, seen
    loop.call_soon_threadsafe(stop.set_result, None)
    thread.join(timeout=5)


def test_tls_certificates_are_verified(kafka: str, worker: Any, tmp_path: Path,
                                       self_signed_tls_server: tuple[int, list[str]]) -> None:
    port, seen = self_signed_tls_server
    sections = {"binance": {"ws_url": f"wss://127.0.0.1:{port}/stream", "rest_url": f"https://127.0.0.1:{port}",
                            "symbols": ["BTC-USDT"]}}
    process = worker("binance", override_file(tmp_path, kafka, sections))
    wait_until(lambda: process.log().count("CERTIFICATE_VERIFY_FAILED") >= 2, 30,
               "both the REST snapshot and the socket to refuse the certificate")
    assert process.stop() == 0
    log = process.log()
    assert "SSLError" in log  # requests, for the REST snapshot
    assert "SSLCertVerificationError" in log  # websockets, for the stream
    assert seen == [], "no request may reach a server whose certificate failed verification"


def test_oversized_frames_close_the_socket_and_the_worker_goes_on(kafka: str, simulator: Any, worker: Any,
                                                                   tmp_path: Path) -> None:
    sim = simulator("binance", rate=20, markets=3)
    # A Binance ticker frame is ~450 bytes: a 200-byte cap refuses every one.
    config = override_file(tmp_path, kafka, sim.config["exchanges"], {"max_frame_bytes": 200})
    process = worker("binance", config)
    wait_until(lambda: process.log().count("closed 1009") >= 2, 30, "the frame cap to close the socket twice")
    assert process.process.poll() is None
    assert process.stop() == 0
    log = process.log()
    # The only frames that got through are the small subscribe acks, one a connection.
    frames = int(log.rsplit("counters frames=", 1)[1].split()[0])
    assert frames == log.count("connected to"), log


def test_secrets_from_the_environment_never_reach_the_log(kafka: str, simulator: Any, worker: Any,
                                                          tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "s3cr3t-Pa55w0rd-never-logged"
    monkeypatch.setenv("COINSTREAM_TEST_KAFKA_PASSWORD", secret)
    sim = simulator("binance", rate=20, markets=3)
    config = override_file(tmp_path, kafka, sim.config["exchanges"])
    settings = yaml.safe_load(config.read_text())
    # SASL settings on a PLAINTEXT listener: librdkafka warns about them, and the
    # warning must not carry the password.
    settings["kafka"]["producer"].update({"sasl.username": "coinstream",
                                          "sasl.password": "${COINSTREAM_TEST_KAFKA_PASSWORD}"})
    config.write_text(yaml.safe_dump(settings))
    assert secret not in config.read_text()
    process = worker("binance", config)
    wait_until(lambda: "connected to" in process.log(), 30, "the worker to connect")
    assert process.stop() == 0
    assert secret not in process.log()

    # A startup failure prints its one line without the secret either.
    settings["kafka"]["producer"]["bootstrap.servers"] = f"127.0.0.1:{free_port()}"
    settings["runtime"]["rest_timeout_s"] = 1
    settings["exchanges"]["binance"]["runtime"]["rest_timeout_s"] = 1
    config.write_text(yaml.safe_dump(settings))
    failed = worker("binance", config)
    assert failed.process.wait(timeout=30) == 69
    assert "Kafka unreachable" in failed.log() and secret not in failed.log()

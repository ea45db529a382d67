"""coinstream run [--config PATH]: the collector in the foreground, as `make run` starts it.

1. the bundled single-node Kafka broker, when kafka.local_broker is true and it does
   not run yet (kafka/kafka-local.sh, on the port of kafka.producer.bootstrap.servers);
2. the configured topics (coinstream topics), and producer ids ready (await_producer_ids);
3. supervisord -c supervisord.conf in the foreground, with the ten workers; --config is
   passed to them as $COINSTREAM_CONFIG.
Ctrl-C stops the workers; the broker keeps running (kafka/kafka-local.sh stop).
"""

import json
import os
import sys
import time
from pathlib import Path
from typing import NoReturn

from confluent_kafka import Producer

from coinstream import check, topics
from coinstream.broker import BrokerError, BundledBroker
from coinstream.check import SUPERVISOR_CONF, local_broker_port
from shared import config as configuration
from shared.arguments import OneLineParser

ROOT = Path(__file__).resolve().parent.parent
SUPERVISORD = Path(sys.executable).parent / "supervisord"
EXIT_CONFIG = 78
EXIT_UNAVAILABLE = 69


def _fail(code: int, message: str) -> NoReturn:
    print(f"coinstream run: error: {message}", file=sys.stderr)
    sys.exit(code)


def start_local_broker(port: int) -> None:
    broker = BundledBroker(port)
    running = broker.running_address()
    if running == broker.address:
        print(f"kafka: local broker already running on {running}")
        return
    if running is not None:
        raise BrokerError(f"the bundled Kafka broker runs on {running}, but kafka.producer.bootstrap.servers "
                          f"says {broker.address}: stop it (make kafka-stop) or point the config at it")
    broker.start()
    print(f"kafka: local broker started on {broker.address}")


def make_directories(supervisor_conf: Path) -> None:
    """logs/ and run/ beside supervisord.conf, where it keeps its socket and logs. A
    checkout has them (empty but for a .gitignore); this puts back deleted ones."""
    for directory in ("logs", "run"):
        (supervisor_conf.parent / directory).mkdir(exist_ok=True)


def producer_ids_ready(config: configuration.Config) -> bool:
    """True when the workers' producers need no id (not idempotent) or Kafka hands one out
    within 30 s; both `coinstream run` and `coinstream demo` ask before the workers start."""
    idempotent = str(config.kafka.producer.get("enable.idempotence", False)).lower() in ("true", "t", "1")
    return not idempotent or await_producer_ids(config)


def await_producer_ids(config: configuration.Config, timeout_s: float = 30.0) -> bool:
    """Wait until Kafka hands an idempotent producer its id; False if not within timeout_s.

    A broker just started fetches its first block of producer ids from the controller
    only when first asked, and answers that first InitProducerId with "coordinator load
    in progress": the worker asking first logged librdkafka's warning "Failed to acquire
    idempotence PID ...: Coordinator load in progress: retrying" at every start. This
    producer asks first, and sends nothing.
    """
    states: list[str] = []
    producer = Producer({**configuration.client_settings(config.kafka.producer), "enable.idempotence": True,
                         "statistics.interval.ms": 100, "logger": configuration.UNHEARD,
                         "stats_cb": lambda text: states.append(json.loads(text).get("eos", {}).get("idemp_state"))})
    deadline = time.monotonic() + timeout_s
    while "Assigned" not in states and time.monotonic() < deadline:
        producer.poll(0.1)
    return "Assigned" in states


def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(prog="coinstream run", description=__doc__.splitlines()[0])
    parser.add_argument("--config", metavar="PATH", type=Path,
                        help=f"override file (default: ${configuration.ENV_OVERRIDE_FILE})")
    arguments = parser.parse_args(argv)
    if arguments.config is not None:
        # The workers read it from the environment supervisord passes on.
        os.environ[configuration.ENV_OVERRIDE_FILE] = str(arguments.config.resolve())
    try:
        config = check.load()  # refuses what a worker would, before supervisord starts them
        port = local_broker_port(config)
        if port is None:
            print("kafka: using the configured cluster")
        else:
            start_local_broker(port)
        for line in topics.ensure(config):
            print(f"topics: {line}")
    except configuration.ConfigError as error:
        _fail(EXIT_CONFIG, str(error))
    except (BrokerError, topics.KafkaUnreachable) as error:
        _fail(EXIT_UNAVAILABLE, str(error))
    if not producer_ids_ready(config):
        print("kafka: no producer id within 30 s; the workers keep asking")
    make_directories(SUPERVISOR_CONF)
    os.execv(SUPERVISORD, [str(SUPERVISORD), "-c", str(SUPERVISOR_CONF)])

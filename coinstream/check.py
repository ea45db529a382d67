"""coinstream check [--config PATH]: validate the configuration; one line and exit 78 if it is wrong."""

import importlib
import os
import sys
from urllib.parse import urlsplit

from shared import cli as worker_cli
from shared import config as configuration
from shared.arguments import OneLineParser
from shared.venue import Venue

EXIT_CONFIG = 78


def venue_class(exchange: str) -> type[Venue]:
    """The Venue subclass that workers/<exchange>.py runs."""
    module = importlib.import_module(f"workers.{exchange}")
    return next(value for value in vars(module).values()
                if isinstance(value, type) and issubclass(value, Venue) and getattr(value, "name", "") == exchange)


def local_broker_port(config: configuration.Config) -> int | None:
    """The port of the bundled broker to start; None when an existing cluster is configured."""
    if not config.kafka.local_broker:
        return None
    bootstrap = str(config.kafka.producer.get("bootstrap.servers", ""))
    first = urlsplit(f"//{bootstrap.split(',')[0]}")
    if first.hostname not in ("127.0.0.1", "localhost") or first.port is None:
        raise configuration.ConfigError(
            f"{config.source_files[-1]}: kafka.local_broker: true, but kafka.producer.bootstrap.servers="
            f"{bootstrap} is not a local 127.0.0.1:PORT address; set local_broker: false to use that cluster")
    return first.port


def load(override: str | os.PathLike[str] | None = None) -> configuration.Config:
    """The configuration, refused (ConfigError) where a worker or `coinstream run` would
    refuse it at its start: beyond the files, each exchange's own rules (the book depths
    it serves), and a bundled broker asked for on another machine's address."""
    config = configuration.load(override)
    for name, exchange in config.exchanges.items():
        worker_cli.check_books(venue_class(name), exchange, config)
    local_broker_port(config)
    return config


def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(prog="coinstream check", description=__doc__.splitlines()[0])
    parser.add_argument("--config", metavar="PATH",
                        help=f"override file (default: ${configuration.ENV_OVERRIDE_FILE})")
    arguments = parser.parse_args(argv)
    try:
        config = load(arguments.config)
    except configuration.ConfigError as error:
        print(f"coinstream check: error: {error}", file=sys.stderr)
        sys.exit(EXIT_CONFIG)
    print(f"config ok: {', '.join(config.source_files)}")

"""coinstream check [--config PATH]: validate the configuration; one line and exit 78 if it is wrong."""

import importlib
import os
import sys

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


def load(override: str | os.PathLike[str] | None = None) -> configuration.Config:
    """The configuration, refused (ConfigError) where a worker would refuse it at its
    start: beyond the files, each exchange's own rules (the book depths it serves)."""
    config = configuration.load(override)
    for name, exchange in config.exchanges.items():
        worker_cli.check_books(venue_class(name), exchange, config)
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

"""coinstream check [--config PATH]: validate the configuration; one line and exit 78 if it is wrong."""

import argparse
import sys

from shared import config as configuration

EXIT_CONFIG = 78


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="coinstream check", description=__doc__.splitlines()[0])
    parser.add_argument("--config", metavar="PATH",
                        help=f"override file (default: ${configuration.ENV_OVERRIDE_FILE})")
    arguments = parser.parse_args(argv)
    try:
        config = configuration.load(arguments.config)
    except configuration.ConfigError as error:
        print(f"coinstream check: error: {error}", file=sys.stderr)
        sys.exit(EXIT_CONFIG)
    print(f"config ok: {', '.join(config.source_files)}")

"""coinstream check [--config PATH]: validate the configuration; one line and exit 78 if it is wrong."""

import configparser
import errno
import importlib
import os
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from shared import cli as worker_cli
from shared import config as configuration
from shared.arguments import OneLineParser
from shared.sink import PURGE_RETURN_S
from shared.venue import Venue

EXIT_CONFIG = 78
# What `coinstream run` starts the workers with.
SUPERVISOR_CONF = Path(__file__).resolve().parent.parent / "supervisord.conf"
SUPERVISOR_DEFAULT_STOPWAITSECS = 10


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
        # Named by where the address was set (a file, or the environment): the line says
        # what to add there, where the last file loaded may be an exchange's own.
        where = config.bootstrap_origin
        fix = ("set local_broker: false to use that cluster" if not where.startswith("$")
               else "set kafka.local_broker: false in an override file (--config) to use that cluster")
        raise configuration.ConfigError(
            f"{where}: kafka.local_broker: true, but kafka.producer.bootstrap.servers={bootstrap} is not a "
            f"local address with its port (127.0.0.1:PORT); {fix}")
    return first.port


def check_stop_timeouts(config: configuration.Config, supervisor_conf: Path = SUPERVISOR_CONF) -> None:
    """ConfigError for a worker whose stop (the flush budget, then the purged records'
    reports) could outlast supervisord's stopwaitsecs: its SIGKILL would lose the queue."""
    programs = configparser.RawConfigParser()
    programs.read(supervisor_conf)
    for name in config.exchanges:
        section = f"program:{name}"
        if not programs.has_section(section):
            continue
        stop_wait_s = programs.getint(section, "stopwaitsecs", fallback=SUPERVISOR_DEFAULT_STOPWAITSECS)
        stop_timeout_s = config.runtime_for(name).stop_timeout_s
        if stop_timeout_s + PURGE_RETURN_S >= stop_wait_s:
            set_for_exchange = "stop_timeout_s" in config.exchange(name).runtime
            path = (("exchanges", name, "runtime", "stop_timeout_s") if set_for_exchange
                    else ("runtime", "stop_timeout_s"))
            raise configuration.ConfigError(
                f"{config.origin(*path)}: {'.'.join(path)}: {stop_timeout_s:g} s, and up to {PURGE_RETURN_S:g} s "
                f"for the purged records' reports, is not within stopwaitsecs={stop_wait_s} of [{section}] in "
                f"{supervisor_conf}: a stop while Kafka is slow would be killed before spooling its queue")


def check_spool(config: configuration.Config) -> None:
    """ConfigError for a spool directory the workers could not write: each would refuse to
    start (exit 78). Probed with a temporary file in it, or in the nearest directory above
    it that exists, which is where a worker creates it: nothing is left behind."""
    directory = Path(config.kafka.spool.dir)
    if not directory.is_absolute():
        directory = SUPERVISOR_CONF.parent / directory  # the workers' directory under supervisord
    existing = directory
    while not existing.exists():
        existing = existing.parent
    try:
        if not existing.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        raise configuration.ConfigError(
            f"{config.origin('kafka', 'spool', 'dir')}: kafka.spool.dir: the spool directory {directory} is not "
            f"writable: {error.strerror or error}") from None


def load(override: str | os.PathLike[str] | None = None) -> configuration.Config:
    """The configuration, refused (ConfigError) where a worker or `coinstream run` would
    refuse it at its start: beyond the files, each exchange's own rules (the book depths
    it serves), a bundled broker asked for on another machine's address, a stop that
    supervisord would cut short, and a spool directory that cannot be written."""
    config = configuration.load(override)
    for name, exchange in config.exchanges.items():
        worker_cli.check_books(venue_class(name), exchange, config)
    local_broker_port(config)
    check_stop_timeouts(config)
    check_spool(config)
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
    kafka = config.kafka
    bundled = " (the bundled broker)" if kafka.local_broker else ""
    sources = [shown_path(source) for source in config.source_files]
    print("config ok")
    print(f"  kafka      {kafka.producer.get('bootstrap.servers')}{bundled}")
    print(f"  exchanges  {', '.join(config.exchanges)} ({len(config.exchanges)})")
    print(f"  read from  {sources[0]}")
    for source in sources[1:]:
        print(f"             {source}")


def shown_path(path: str) -> str:
    """`path` relative to the working directory when it lies under it: shorter to read."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return path

"""coinstream topics [--config PATH]: create the configured topics, idempotently.

Creates every ticker topic and the dead-letter topic with the configured partitions,
replication factor and min.insync.replicas. Topics that already exist are left as they are (and reported
if their partition count differs); running it twice is harmless.
"""

import logging
from typing import NoReturn

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from coinstream import cli
from shared import config as configuration
from shared.arguments import OneLineParser
from shared.config import client_settings

EXIT_UNAVAILABLE = 69


class KafkaUnreachable(Exception):
    """Kafka did not answer: nothing in the configuration to fix, unless the address is wrong."""


def ensure(config: configuration.Config, timeout_s: float = 30.0) -> list[str]:
    """Create missing topics; return one line per topic describing what happened."""
    admin_config = client_settings(config.kafka.producer)
    # librdkafka logs through Python logging rather than raw to stderr.
    admin = AdminClient({**admin_config, "logger": logging.getLogger("coinstream.kafka")})
    try:
        existing = admin.list_topics(timeout=timeout_s).topics
    except KafkaException as error:
        raise KafkaUnreachable(
            f"{config.bootstrap_origin}: kafka.producer.bootstrap.servers: Kafka unreachable at "
            f"{admin_config.get('bootstrap.servers')}: {error.args[0].str()}"
        ) from None
    report = []
    wanted = config.all_topics()
    missing = [name for name in wanted if name not in existing]
    for name in wanted:
        if name in existing:
            partitions = len(existing[name].partitions)
            note = "" if partitions == config.topics.partitions else (
                f" (has {partitions} partitions, config says {config.topics.partitions})")
            report.append(f"exists  {name}{note}")
    settings = config.topics
    topic_config = ({} if settings.min_insync_replicas is None
                    else {"min.insync.replicas": str(settings.min_insync_replicas)})
    created = (f"partitions={settings.partitions} replication={settings.replication_factor}"
               + ("" if settings.min_insync_replicas is None else f" min.insync={settings.min_insync_replicas}"))
    if missing:
        futures = admin.create_topics(
            [NewTopic(name, settings.partitions, settings.replication_factor, config=topic_config)
             for name in missing],
            operation_timeout=timeout_s, request_timeout=timeout_s,
        )
        for name, future in futures.items():
            try:
                future.result()
                report.append(f"created {name} {created}")
            except KafkaException as error:
                if error.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
                    report.append(f"exists  {name}")  # created concurrently
                else:
                    raise configuration.ConfigError(
                        f"{config.source_files[-1]}: topics: cannot create {name}: {error.args[0].str()}"
                    ) from None
    return report


def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(prog="coinstream topics", description=__doc__.splitlines()[0])
    parser.add_argument("--config", metavar="PATH", help="override file (default: $COINSTREAM_CONFIG)")
    arguments = parser.parse_args(argv)

    def fail(code: int, message: str) -> NoReturn:
        cli.fail("coinstream topics", code, message)

    try:
        config = configuration.load(arguments.config)
        for line in ensure(config):
            print(f"topics: {line}")
    except configuration.ConfigError as error:
        fail(cli.EXIT_CONFIG, str(error))
    except KafkaUnreachable as error:
        fail(EXIT_UNAVAILABLE, str(error))


if __name__ == "__main__":
    main()

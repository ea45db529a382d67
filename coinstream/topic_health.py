"""The configured topics' health, for `coinstream status`: per topic its partitions, the
replicas in sync against the replication factor, and the partitions under-replicated,
below min.insync.replicas or without a leader, from the cluster's own metadata (the admin
client), so that a degraded cluster shows before it costs data.

A partition is under-replicated when fewer replicas are in sync than it has; with fewer
in sync than the topic's min.insync.replicas, acks=all producers wait (the workers queue,
then spool); without a leader, nothing is written to it at all.
"""

import logging
from dataclasses import dataclass

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

from coinstream.table import format_table
from shared import config as configuration
from shared.config import client_settings

TIMEOUT_S = 5.0
HEADER = ("TOPIC", "PARTITIONS", "IN SYNC", "MIN ISR", "UNDER-REPLICATED", "BELOW MIN ISR", "NO LEADER", "HEALTH")
NUMERIC_COLUMNS = {1, 2, 3, 4, 5, 6}


@dataclass
class TopicHealth:
    topic: str
    exists: bool = True
    partitions: int = 0
    replication: int = 0  # the most replicas any partition has
    fewest_in_sync: int = 0
    min_insync: int | None = None  # None: the topic's config could not be read
    under_replicated: int = 0
    below_min_insync: int = 0
    leaderless: int = 0

    @property
    def problems(self) -> list[str]:
        if not self.exists:
            return ["missing (coinstream topics creates it)"]
        found = []
        if self.leaderless:
            found.append(f"{self.leaderless} without leader")
        if self.below_min_insync:
            found.append(f"{self.below_min_insync} below min.insync.replicas: writes wait")
        if self.under_replicated:
            found.append(f"{self.under_replicated} under-replicated")
        return found

    def row(self) -> list[str]:
        if not self.exists:
            return [self.topic, "-", "-", "-", "-", "-", "-", "; ".join(self.problems)]
        return [self.topic, str(self.partitions), f"{self.fewest_in_sync}/{self.replication}",
                "?" if self.min_insync is None else str(self.min_insync), str(self.under_replicated),
                str(self.below_min_insync), str(self.leaderless), "; ".join(self.problems) or "ok"]


def collect(config: configuration.Config) -> list[TopicHealth] | str:
    """Each configured topic's health, or why the cluster could not be asked."""
    admin = AdminClient({**client_settings(config.kafka.producer), "logger": logging.getLogger("coinstream.kafka")})
    try:
        metadata = admin.list_topics(timeout=TIMEOUT_S).topics
    except KafkaException as error:
        return f"Kafka unreachable at {config.kafka.producer.get('bootstrap.servers')}: {error.args[0].str()}"
    names = config.all_topics()
    min_insync = _min_insync(admin, [name for name in names if name in metadata])
    report = []
    for name in names:
        topic = metadata.get(name)
        if topic is None or topic.error is not None:
            report.append(TopicHealth(name, exists=False))
            continue
        partitions = list(topic.partitions.values())
        needed = min_insync.get(name)
        report.append(TopicHealth(
            name, partitions=len(partitions),
            replication=max((len(partition.replicas) for partition in partitions), default=0),
            fewest_in_sync=min((len(partition.isrs) for partition in partitions), default=0),
            min_insync=needed,
            under_replicated=sum(1 for partition in partitions if len(partition.isrs) < len(partition.replicas)),
            below_min_insync=0 if needed is None else sum(1 for partition in partitions
                                                          if len(partition.isrs) < needed),
            leaderless=sum(1 for partition in partitions if partition.leader < 0)))
    return report


def _min_insync(admin: AdminClient, names: list[str]) -> dict[str, int]:
    """Each topic's min.insync.replicas (its own, else the broker's default); those not read are absent."""
    if not names:
        return {}
    futures = admin.describe_configs([ConfigResource(ResourceType.TOPIC, name) for name in names],
                                     request_timeout=TIMEOUT_S)
    found = {}
    for resource, future in futures.items():
        try:
            entry = future.result().get("min.insync.replicas")
        except KafkaException:
            continue  # shown as "?": the metadata above still tells the rest
        if entry is not None and entry.value is not None:
            found[resource.name] = int(entry.value)
    return found


def show(config: configuration.Config) -> list[str]:
    """Print the topics' table (or why there is none); return the topics with a problem."""
    health = collect(config)
    if isinstance(health, str):
        print(f"topics: {health}")
        return ["(Kafka unreachable)"]
    for line in format_table(HEADER, [topic.row() for topic in health], NUMERIC_COLUMNS):
        print(line)
    return [topic.topic for topic in health if topic.problems]

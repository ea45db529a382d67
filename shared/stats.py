"""Counters every worker keeps, and the once-a-minute line that reports them."""

import logging
from collections import Counter


class Stats:
    def __init__(self) -> None:
        self.frames = 0
        self.records = 0
        self.dead_letters = 0
        self.exchange_errors = 0
        self.reconnects: Counter[str] = Counter()
        self.rest_polls = 0
        self.rest_errors = 0
        self.rate_limit_waits = 0
        self.delivered = 0
        self.delivery_failures = 0
        self.spooled = 0

    def line(self, queue_depth: int) -> str:
        reasons = ",".join(f"{reason}={count}" for reason, count in sorted(self.reconnects.items()))
        return (
            f"counters frames={self.frames} records={self.records} "
            f"dead_letters={self.dead_letters} exchange_errors={self.exchange_errors} "
            f"reconnects={sum(self.reconnects.values())}[{reasons}] "
            f"rest_polls={self.rest_polls} rest_errors={self.rest_errors} "
            f"rate_limit_waits={self.rate_limit_waits} kafka_queue={queue_depth} "
            f"delivered={self.delivered} delivery_failures={self.delivery_failures} "
            f"spooled={self.spooled}"
        )

    def report(self, log: logging.Logger, queue_depth: int) -> None:
        log.info(self.line(queue_depth))

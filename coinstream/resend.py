"""coinstream resend [--config PATH] [FILE ...]: send again the records Kafka refused for good.

A worker keeps each record Kafka will never take (one larger than message.max.bytes) in
<spool dir>/<exchange>.undelivered.jsonl: a JSON line with its topic, key, value and
the error. Once the cause is fixed (the limit raised on the producer, in kafka.producer,
and on the topic), this sends them again, unchanged: their run and seq are the ones
the worker gave them, so `coinstream verify` finds them where they were missing (out of
order within their partition, since they come later). The lines Kafka acknowledges
leave the file; those refused again stay in it, with the new error.

Default FILEs: every *.undelivered.jsonl in the configured spool dir (kafka.spool.dir,
relative to the current directory, as the workers run from the repository). Safe beside
a running worker: a file is first renamed to <file>.resending, so the worker's new lines
start a new file, and the refused lines are appended to that one. A resend stopped
midway leaves the .resending file, which the next resend sends first: the records
Kafka had acknowledged are then sent twice (verify reports them as repeats), none lost.

Exit 0 when every record was delivered, 1 when some are still kept, 2 on a usage
error, 69 when Kafka cannot be reached, 78 for a bad configuration.
"""

import logging
import os
import sys
from pathlib import Path
from typing import NoReturn

import msgspec
from confluent_kafka import KafkaError, KafkaException, Message, Producer

from coinstream import cli
from shared import config as configuration
from shared.arguments import OneLineParser

EXIT_KEPT = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 69
SUFFIX = ".undelivered.jsonl"
SENDING = ".resending"
METADATA_TIMEOUT_S = 10.0
# How long the records of one file may take to be acknowledged; those without an answer
# by then stay in the file.
FLUSH_TIMEOUT_S = 60.0
QUEUE_FULL_WAIT_S = 0.5


class Undelivered(msgspec.Struct):
    """One line of undelivered.jsonl, as shared.sink writes it."""

    topic: str
    key: str
    value: str
    error: str = ""


_line = msgspec.json.Decoder(Undelivered)
_encode = msgspec.json.Encoder().encode


def resend_file(producer: Producer, path: Path) -> tuple[int, list[str]]:
    """Send the lines of `path` (and of its .resending leftover first); return how many
    Kafka acknowledged and the errors of those kept. Lines that are no record (a line cut
    by a full disk) are kept as they are, never dropped."""
    delivered = 0
    errors: list[str] = []
    sending = path.with_name(path.name + SENDING)
    # A leftover .resending first, then the file itself.
    for take_the_file in ([False, True] if sending.exists() else [True]):
        if take_the_file:
            try:
                os.rename(path, sending)
            except FileNotFoundError:
                break
        sent, kept = _send_lines(producer, sending.read_bytes().splitlines())
        delivered += sent
        if kept:
            with open(path, "ab") as undelivered:  # beside what the worker wrote meanwhile
                undelivered.write(b"".join(line + b"\n" for line, _ in kept))
        errors += [error for _, error in kept]
        sending.unlink()
    return delivered, errors


def _send_lines(producer: Producer, lines: list[bytes]) -> tuple[int, list[tuple[bytes, str]]]:
    """Produce every line's record in order; the number delivered, and the lines kept with their error."""
    answers: dict[int, KafkaError | None] = {}
    records: dict[int, Undelivered] = {}
    kept: list[tuple[bytes, str]] = []
    for index, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            record = records[index] = _line.decode(line)
        except msgspec.DecodeError as error:
            kept.append((line, f"not a record: {error}"))
            continue

        def answer(error: KafkaError | None, message: Message, index: int = index) -> None:
            answers[index] = error

        while True:
            try:
                producer.produce(record.topic, record.value.encode(), record.key.encode(), on_delivery=answer)
                break
            except BufferError:
                producer.poll(QUEUE_FULL_WAIT_S)
            except KafkaException as error:  # refused at once (too large for the producer)
                answers[index] = error.args[0]
                break
    producer.flush(FLUSH_TIMEOUT_S)
    delivered = 0
    for index, record in records.items():
        error = answers.get(index, KafkaError(KafkaError._TIMED_OUT, "no answer from Kafka in time"))
        if error is None:
            delivered += 1
        else:
            record.error = error.str()
            kept.append((_encode(record), record.error))
    return delivered, kept


def undelivered_files(config: configuration.Config) -> list[Path]:
    spool = Path(config.kafka.spool.dir)
    leftovers = {path.with_name(path.name[:-len(SENDING)]) for path in spool.glob(f"*{SUFFIX}{SENDING}")}
    return sorted(set(spool.glob(f"*{SUFFIX}")) | leftovers)


def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(prog="coinstream resend", description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", metavar="FILE", type=Path,
                        help="undelivered.jsonl files (default: those in the configured spool dir)")
    parser.add_argument("--config", metavar="PATH", help="override file (default: $COINSTREAM_CONFIG)")
    arguments = parser.parse_args(argv)

    def fail(code: int, message: str) -> NoReturn:
        cli.fail("coinstream resend", code, message)

    config = cli.config_or_exit("coinstream resend", arguments.config)
    files = arguments.files or undelivered_files(config)
    for path in arguments.files:
        if not path.exists() and not path.with_name(path.name + SENDING).exists():
            fail(EXIT_USAGE, f"{path}: no such file")
    if not files:
        print(f"resend: nothing to send (no *{SUFFIX} in {config.kafka.spool.dir})")
        return
    try:
        producer = Producer({**config.kafka.producer, "logger": logging.getLogger("coinstream.kafka")})
        producer.list_topics(timeout=METADATA_TIMEOUT_S)
    except KafkaException as error:
        fail(EXIT_UNAVAILABLE, f"{config.bootstrap_origin}: kafka.producer: Kafka unreachable at "
                               f"{config.kafka.producer.get('bootstrap.servers')}: {error.args[0].str()}")
    still_kept = 0
    for path in files:
        try:
            delivered, errors = resend_file(producer, path)
        except OSError as error:  # a read-only or full spool disk: the lines stay where they are
            print(f"resend: {path}: {error.strerror or error}; its records stay in it or in its {SENDING} file, "
                  "for the next resend")
            still_kept += 1
            continue
        still_kept += len(errors)
        why = f" ({errors[-1]})" if errors else ""
        print(f"resend: {path}: {delivered} delivered, {len(errors)} kept{why}")
    if still_kept:
        sys.exit(EXIT_KEPT)


if __name__ == "__main__":
    main()

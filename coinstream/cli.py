"""coinstream <command> [options]: one entry point for every operator tool.

Each command is a module of this package with a main(argv); `coinstream <command> -h`
prints its options. Workers are operated with supervisorctl, as the README shows.
"""

import importlib
import os
import signal
import sys
from typing import NoReturn

from shared import config as configuration

# command -> (module, one line of help), in the order a newcomer meets them.
COMMANDS = {
    "run": ("coinstream.run", "start the bundled Kafka (if configured), create the topics, run supervisord"),
    "status": ("coinstream.status", "one table of the workers' and the topics' health; exit 1 when one is unhealthy"),
    "live": ("coinstream.live", "the latest tickers, or one market's order book, from Kafka, redrawn in place"),
    "topics": ("coinstream.topics", "create the configured Kafka topics (idempotent)"),
    "check": ("coinstream.check", "validate the configuration without starting anything"),
    "demo": ("coinstream.demo", "the ten workers against the exchange simulator, with a broker of its own"),
    "verify": ("coinstream.verify", "read topics and prove delivery by run and seq; exit 1 on a gap or repeat"),
    "resend": ("coinstream.resend", "send again the records Kafka refused for good (undelivered.jsonl)"),
}
EXIT_USAGE = 2
EXIT_CONFIG = 78
# When the reader has gone (`coinstream status | head`): 128 + SIGPIPE, what a shell
# reports for a program the signal ended (cat, yes), so that a script with pipefail
# tells it apart from the 1 of status and verify (unhealthy, a gap in delivery).
EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: coinstream <command> [options]   (coinstream <command> -h for its options)", "", "commands:"]
    lines += [f"  {name:<{width}}  {summary}" for name, (_, summary) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    try:
        try:
            _run_command(argv)
        finally:
            # What is still buffered fails here, where it is caught, rather than in the
            # interpreter's flush at exit; also after a command's sys.exit().
            sys.stdout.flush()
    except BrokenPipeError:
        # The reader (head, less) has stopped reading: nothing more is wanted. stdout goes
        # to /dev/null, or the interpreter's flush at exit would fail on the pipe again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(EXIT_BROKEN_PIPE)


def _run_command(argv: list[str] | None) -> None:
    arguments = sys.argv[1:] if argv is None else argv
    if not arguments or arguments[0] in ("-h", "--help"):
        print(usage())
        sys.exit(0 if arguments else EXIT_USAGE)
    command, rest = arguments[0], arguments[1:]
    if command not in COMMANDS:
        print(f"coinstream: error: unknown command {command!r} (one of: {', '.join(COMMANDS)})", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    importlib.import_module(COMMANDS[command][0]).main(rest)


def fail(program: str, code: int, message: str) -> NoReturn:
    """A command's error: one line on stderr, then exit `code`."""
    print(f"{program}: error: {message}", file=sys.stderr)
    sys.exit(code)


def config_or_exit(program: str, path: str | None) -> configuration.Config:
    """The configuration, or one line naming the file and the key, and exit 78."""
    try:
        return configuration.load(path)
    except configuration.ConfigError as error:
        fail(program, EXIT_CONFIG, str(error))

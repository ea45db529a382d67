"""Every command the documents show exists as they write it (README.md, docs/*.md,
bench/README.md), and every relative link leads somewhere.

Commands are read from ```bash blocks and from inline code that starts with a command.
Each is checked against the real thing, without running it:
- `make T VAR=...`: `make -n` in this checkout accepts it; the coinstream and
  kafka-local.sh commands make would run (with ARGS) are checked in turn;
- `coinstream <command> --flags`: coinstream's own parsers accept them;
- `python -m <module> --flags`: the module exists and its argparse parser accepts them
  (pytest: it collects the named tests);
- `kafka/kafka-local.sh ...`: the script dispatches the subcommand and knows the option;
- `supervisorctl -c conf <action> <program>`, `supervisord -c conf`: the conf exists,
  supervisorctl has the action, supervisord.conf the program;
- `curl .../_sim/...`: the simulator has that control and that fault kind;
- any other program must be one the documents are known to use; a path into this
  repository must exist.
The checker itself is tested on wrong commands first (test_wrong_commands_are_refused).
Beside the commands: every YAML example loads as an override file, the metrics table
names what a worker exports, and the counters example names what a worker logs.
"""

import argparse
import configparser
import contextlib
import importlib.util
import inspect
import io
import os
import re
import runpy
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import yaml
from supervisor import supervisorctl

from bench.tiers import VENUE_CLASSES
from coinstream import cli, status, topic_health
from shared import config as configuration
from shared.cli import _depths
from shared.stats import Stats
from simulator.core import ExchangeSim
from tests.harness import ROOT
from tests.unit.test_metrics import exported_names

DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "bench" / "README.md"]
EXCHANGES = ("upbit", "bithumb", "coinone", "korbit", "okx", "bybit", "gateio", "binance", "kraken", "coinbase")
# Where the documents install the checkout (docs/operations.md, systemd): the same files.
INSTALLED_CHECKOUT = "/opt/coinstream/"
# Programs of the system the documents use beside coinstream's own.
SYSTEM_PROGRAMS = {"apt-get", "cd", "chown", "cp", "git", "install", "kcat", "mkdir", "promtool",
                   "systemctl", "tail", "tar", "useradd"}
REPOSITORY_DIRECTORIES = {"bench", "coinstream", "config", "deploy", "docs", "kafka", "logs", "run",
                          "schemas", "shared", "simulator", "tests", "workers"}
# Written at run time: only the directory must exist.
RUNTIME_DIRECTORIES = {"logs", "run"}
COMMAND_START = re.compile(r"^(?:[A-Z_]+=\S+ )*(?:sudo |env )*(?:make|coinstream|kafka/kafka-local\.sh|"
                           r"\S*\.venv/bin/\S+|python3? -m|supervisorctl|supervisord|promtool|kcat)(?: |$)")
SEPARATORS = {"&&", "||", "|", ";"}


def fenced_blocks(text: str, language: str) -> Iterator[tuple[int, str]]:
    """(line number, content) of each ```language block."""
    for match in re.finditer(rf"^```{language}\n(.*?)^```$", text, re.MULTILINE | re.DOTALL):
        yield text.count("\n", 0, match.start()) + 2, match.group(1)


def without_fences(text: str) -> str:
    return re.sub(r"^```.*?^```$", "", text, flags=re.MULTILINE | re.DOTALL)


def commands(path: Path) -> Iterator[tuple[str, str]]:
    """(where, command line) for every command in a document."""
    text = path.read_text()
    name = path.relative_to(ROOT)
    for first, block in fenced_blocks(text, "bash"):
        for offset, line in enumerate(block.replace("\\\n", " ").splitlines()):
            if line.strip():
                yield f"{name}:{first + offset}", line
    for number, line in enumerate(without_fences(text).splitlines(), 1):
        for span in re.findall(r"`([^`]+)`", line):
            if COMMAND_START.match(span):
                yield f"{name}:{number}", span


def simple_commands(line: str) -> list[list[str]]:
    """A shell line's simple commands, as argument lists (comments dropped)."""
    # `<name>` becomes `{name}`: to the shell's lexer < and > are redirections.
    lexer = shlex.shlex(re.sub(r"<(\w+)>", r"{\1}", line), posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    result: list[list[str]] = [[]]
    for token in lexer:
        if token in SEPARATORS:
            result.append([])
        else:
            result[-1].append(token)
    return [argv for argv in result if argv]


def program_arguments(argv: list[str]) -> list[str]:
    """Without the environment assignments, `sudo -u USER [-H]`, `env` and `exec` in front."""
    while argv:
        if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", argv[0]) or argv[0] in ("env", "exec"):
            argv = argv[1:]
        elif argv[0] == "sudo":
            argv = argv[1:]
            while argv and argv[0].startswith("-"):
                argv = argv[2:] if argv[0] == "-u" else argv[1:]
        else:
            break
    return argv


def in_checkout(argument: str) -> str:
    return argument[len(INSTALLED_CHECKOUT):] if argument.startswith(INSTALLED_CHECKOUT) else argument


def placeholder(argument: str) -> bool:
    """`<name>` (`{name}` once split), `N`, `[--fresh]`: what the reader fills in."""
    return bool(re.fullmatch(r"\{[^}]+\}|[A-Z]+|\[.*\]", argument))


class Parsed(Exception):
    """Raised in place of running a command once its parser accepted the arguments."""


@contextlib.contextmanager
def parse_only() -> Iterator[io.StringIO]:
    """argparse parses as usual, then stops the program; its complaints are captured."""
    original = argparse.ArgumentParser.parse_args

    def parse_args(self: argparse.ArgumentParser, *args: object, **kwargs: object) -> argparse.Namespace:
        original(self, *args, **kwargs)  # type: ignore[arg-type]
        raise Parsed

    errors = io.StringIO()
    with mock.patch.object(argparse.ArgumentParser, "parse_args", parse_args), \
            contextlib.redirect_stderr(errors), contextlib.redirect_stdout(io.StringIO()):
        yield errors


def parser_refusal(run: Callable[[], object], what: str) -> str | None:
    """None when `run()` reached a parser that accepted its arguments."""
    with parse_only() as errors:
        try:
            run()
        except Parsed:
            return None
        except SystemExit as exit:
            if exit.code == 0:
                return None  # -h
            return f"{what}: exit {exit.code}: {errors.getvalue().strip()}"
    return f"{what}: no argument parser was reached"


def coinstream_problem(arguments: list[str]) -> str | None:
    if not arguments:
        return None  # the program, named
    return parser_refusal(lambda: cli.main(arguments), "coinstream " + " ".join(arguments))


def module_problem(module: str, arguments: list[str]) -> str | None:
    if "{exchange}" in module:
        return next(filter(None, (module_problem(module.replace("{exchange}", name), arguments)
                                  for name in EXCHANGES)), None)
    if module == "coinstream":
        return coinstream_problem(arguments)
    if module == "pytest":
        collected = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                                    *arguments], cwd=ROOT, capture_output=True, text=True, timeout=120)
        return None if collected.returncode == 0 else f"pytest {arguments}: {collected.stdout[-500:]}"
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return f"python -m {module}: no such module"
    if spec.submodule_search_locations is not None:
        spec = importlib.util.find_spec(f"{module}.__main__")
        if spec is None or spec.origin is None:
            return f"python -m {module}: a package without __main__"
    origin = spec.origin
    source = Path(origin).read_text()
    if "parse_args(" not in source and "cli.main(" not in source:
        return f"python -m {module}: parses no arguments that this test could check"

    def run() -> None:
        with mock.patch.object(sys, "argv", [module, *arguments]):
            runpy.run_path(origin, run_name="__main__")  # as `python -m` runs the file

    return parser_refusal(run, f"python -m {module} {' '.join(arguments)}")


def make_problem(arguments: list[str]) -> str | None:
    while arguments[:1] == ["-C"]:
        arguments = arguments[2:]  # the documents' copy of this checkout
    # Not the flags of a make that runs this test (make test).
    environment = {key: value for key, value in os.environ.items() if key not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    dry = subprocess.run(["make", "-n", "-C", str(ROOT), *arguments], capture_output=True, text=True, timeout=60,
                         env=environment)
    if dry.returncode != 0:
        return f"make {' '.join(arguments)}: {dry.stderr.strip()}"
    for line in dry.stdout.splitlines():
        if "bin/coinstream" in line or "kafka-local.sh" in line:
            if problem := line_problem(line):
                return f"make {' '.join(arguments)} runs {line!r}: {problem}"
    return None


def kafka_local_problem(arguments: list[str]) -> str | None:
    script = (ROOT / "kafka" / "kafka-local.sh").read_text()
    dispatch = script[script.rindex('\ncase "${1:-}" in'):]
    top = set(re.findall(r"^  ([a-z]+)\)", dispatch, re.MULTILINE))
    cluster = set(re.findall(r"^      ([a-z]+)\)", dispatch, re.MULTILINE))
    words = [word.strip("[]") for word in arguments]
    if not words:
        return None  # the script, named
    if words[0] not in top:
        return f"kafka-local.sh: no subcommand {words[:1]} (one of {sorted(top)})"
    if words[0] == "configs":
        return None  # the rest are Kafka's kafka-configs arguments, passed through
    if words[0] == "cluster" and (len(words) < 2 or words[1] not in cluster):
        return f"kafka-local.sh cluster: no subcommand {words[1:2]} (one of {sorted(cluster)})"
    for word in words[1:]:
        if word.startswith("-") and f"{word})" not in script:
            return f"kafka-local.sh: unknown option {word}"
        if not (word.startswith("-") or word in cluster or word.isdigit() or word == "N"):
            return f"kafka-local.sh: unexpected argument {word}"
    return None


def supervisor_problem(program: str, arguments: list[str]) -> str | None:
    if arguments[:1] == ["-c"]:
        conf = ROOT / in_checkout(arguments[1])
        if not conf.is_file():
            return f"{program} -c {arguments[1]}: no such file"
        arguments = arguments[2:]
    if program == "supervisord":
        return f"supervisord {arguments}: unexpected arguments" if arguments else None
    actions = {name[3:] for name in dir(supervisorctl.DefaultControllerPlugin) if name.startswith("do_")}
    if not arguments or arguments[0] not in actions:
        return f"supervisorctl: no action {arguments[:1]}"
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(ROOT / "supervisord.conf")
    programs = {section.split(":", 1)[1] for section in parser.sections() if section.startswith("program:")}
    if arguments[0] in ("start", "stop", "restart", "status", "tail", "signal", "pid"):
        for name in arguments[1:]:
            if not (name.startswith("-") or placeholder(name) or name in programs | {"all"}):
                return f"supervisorctl {arguments[0]}: no program {name!r} in supervisord.conf"
    return None


def curl_problem(arguments: list[str]) -> str | None:
    [url] = [argument for argument in arguments if "/_sim/" in argument] or [None]
    if url is None:
        return f"curl {arguments}: not the simulator's control URL"
    command, _, query = url.split("/_sim/", 1)[1].partition("?")
    controls = set(re.findall(r"/_sim/(\w+)", inspect.getmodule(ExchangeSim).__doc__ or ""))
    if command not in controls:
        return f"/_sim/{command}: the simulator has {sorted(controls)}"
    kind = re.search(r"(?:^|&)kind=(\w+)", query)
    if kind and f'"{kind.group(1)}"' not in inspect.getsource(ExchangeSim._control):
        return f"/_sim/fault: no kind {kind.group(1)!r}"
    return None


def path_problem(argument: str) -> str | None:
    path = in_checkout(argument).split("::", 1)[0]
    top = path.split("/", 1)[0]
    if "/" not in path or top not in REPOSITORY_DIRECTORIES or "{" in path:
        return None
    target = ROOT / path
    if top in RUNTIME_DIRECTORIES:
        target = target.parent
    return None if target.exists() else f"{argument}: no such file in the repository"


def command_problem(argv: list[str]) -> str | None:
    argv = program_arguments(argv)
    if not argv:
        return None
    program, arguments = in_checkout(argv[0]), argv[1:]
    name = program.rsplit("/", 1)[-1]
    for argument in arguments:
        if problem := path_problem(argument):
            return problem
    if name == "coinstream":
        return coinstream_problem(arguments)
    if re.fullmatch(r"python(3(\.\d+)?)?", name):
        if arguments[:1] != ["-m"] or len(arguments) < 2:
            return f"{' '.join(argv)}: only `python -m <module>` is documented"
        return module_problem(arguments[1], arguments[2:])
    if name == "make":
        return make_problem(arguments)
    if name == "kafka-local.sh":
        return kafka_local_problem(arguments)
    if name in ("supervisorctl", "supervisord"):
        return supervisor_problem(name, arguments)
    if name == "curl":
        return curl_problem(arguments)
    if name in SYSTEM_PROGRAMS:
        return None
    return f"{program}: not a program the documents are known to use (add it to SYSTEM_PROGRAMS if it is one)"


def line_problem(line: str) -> str | None:
    try:
        parts = simple_commands(line)
    except ValueError as error:
        return f"cannot split {line!r}: {error}"
    return next(filter(None, map(command_problem, parts)), None)


ALL_COMMANDS = [(where, line) for path in DOCUMENTS for where, line in commands(path)]


@pytest.mark.parametrize("where, line", ALL_COMMANDS, ids=[where for where, _ in ALL_COMMANDS])
def test_command_exists(where: str, line: str) -> None:
    assert line_problem(line) is None, f"{where}: {line}\n{line_problem(line)}"


def test_the_documents_show_commands() -> None:
    """The extraction finds them: a change of format would otherwise pass unchecked."""
    found = {line for _, line in ALL_COMMANDS}
    assert {"make run", "make demo", "make test"} <= found
    assert len(ALL_COMMANDS) > 50


@pytest.mark.parametrize("line", [
    "make stauts",
    'make live ARGS="--bse BTC"',
    ".venv/bin/coinstream verfy",
    ".venv/bin/coinstream verify --sinse 1h",
    "coinstream status --window soon",
    ".venv/bin/python -m simulatr --exchange binance",
    ".venv/bin/python -m simulator --exchange binance --rates 100",
    "python -m workers.<exchange> --sink file",
    "python -m bench --scenario everything",
    ".venv/bin/python -m pytest tests/integration/test_nothing.py",
    "kafka/kafka-local.sh restart",
    "kafka/kafka-local.sh cluster reboot 2",
    "kafka/kafka-local.sh start --clean",
    ".venv/bin/supervisorctl -c supervisord.conf restart krakn",
    ".venv/bin/supervisorctl -c supervisord.conf bounce kraken",
    ".venv/bin/supervisorctl -c nowhere.conf status",
    "curl '127.0.0.1:1/_sim/fault?kind=explode'",
    "curl '127.0.0.1:1/_sim/pause'",
    "COINSTREAM_CONFIG=x.yaml coinstreams run",
    "tail -f deploy/nothing.log",
    "sudo -u coinstream env COINSTREAM_CONFIG=site.yaml .venv/bin/coinstream chek",
])
def test_wrong_commands_are_refused(line: str) -> None:
    assert line_problem(line) is not None


LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def anchors(path: Path) -> set[str]:
    """GitHub's anchors for a document's headings."""
    headings = re.findall(r"^#+ (.+)$", without_fences(path.read_text()), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.replace("`", "").lower()).replace(" ", "-") for heading in headings}


def link_problem(document: Path, target: str) -> str | None:
    if re.match(r"[a-z]+:", target):
        return None
    file, _, anchor = target.partition("#")
    destination = (document.parent / file).resolve() if file else document
    if not destination.exists():
        return f"{target}: no such file"
    if anchor and destination.suffix == ".md" and anchor not in anchors(destination):
        return f"{target}: no heading #{anchor} in {destination.relative_to(ROOT)}"
    return None


ALL_LINKS = [(document, target) for document in DOCUMENTS
             for target in LINK.findall(without_fences(document.read_text()))]


@pytest.mark.parametrize("document, target", ALL_LINKS,
                         ids=[f"{document.relative_to(ROOT)}->{target}" for document, target in ALL_LINKS])
def test_relative_link_leads_somewhere(document: Path, target: str) -> None:
    assert link_problem(document, target) is None, link_problem(document, target)


@pytest.mark.parametrize("target", ["nowhere.md", "docs/commands.md#coinstream-nothing", "bench/HISTORY.md"])
def test_broken_links_are_refused(target: str) -> None:
    assert link_problem(ROOT / "README.md", target) is not None


def test_every_document_is_linked_from_the_readme_or_docs() -> None:
    linked = {(document.parent / target.partition("#")[0]).resolve() for document, target in ALL_LINKS}
    assert set(DOCUMENTS) - {ROOT / "README.md"} <= linked


def test_the_documented_consumer_compiles() -> None:
    [(_, consumer)] = fenced_blocks((ROOT / "docs" / "record.md").read_text(), "python")
    compile(consumer, "docs/record.md consumer", "exec")


def counter_names(line: str) -> list[str]:
    return re.findall(r"(\w+)(?:<=|=)", line.split(" counters ", 1)[-1])


def test_counters_example_names_what_the_worker_logs() -> None:
    [example] = [line for line in (ROOT / "docs" / "operations.md").read_text().splitlines()
                 if " INFO binance counters " in line]
    assert counter_names(example) == counter_names(Stats().line(0))


def test_metrics_table_names_what_a_worker_exports() -> None:
    documented = set(re.findall(r"\bcoinstream_[a-z0-9_]+", (ROOT / "docs" / "metrics.md").read_text()))
    exported = {re.sub(r"_(bucket|sum|count|created)$", "", name) for name in exported_names()
                if name.startswith("coinstream_")}
    assert documented == exported


CONFIG_EXAMPLES = [(f"{path.relative_to(ROOT)}:{line}", block) for path in DOCUMENTS
                   for line, block in fenced_blocks(path.read_text(), "yaml")]


@pytest.mark.parametrize("where, example", CONFIG_EXAMPLES, ids=[where for where, _ in CONFIG_EXAMPLES])
def test_config_example_loads(where: str, example: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every YAML example is an override file coinstream accepts (its secrets set)."""
    monkeypatch.setenv("KAFKA_PASSWORD", "secret")
    override = tmp_path / "site.yaml"
    override.write_text(example)
    configuration.load(str(override))


def _commented_settings(text: str, keys: tuple[str, ...]) -> dict[str, Any]:
    """The `# key: value` lines of a shipped config file for these keys, uncommented, read as YAML."""
    lines = [line.strip().removeprefix("# ") for line in text.splitlines()]
    return yaml.safe_load("\n".join(line for line in lines if line.split(":", 1)[0] in keys)) or {}


def test_default_file_shows_the_book_topics_at_their_defaults() -> None:
    """The book settings' defaults live in shared/config.py; config/coinstream.yaml shows them."""
    shown = _commented_settings(configuration.DEFAULT_FILE.read_text(), ("book", "book_by_exchange"))
    default = configuration.Topics()
    assert shown == {"book": default.book, "book_by_exchange": default.book_by_exchange}


@pytest.mark.parametrize("exchange", EXCHANGES)
def test_exchange_file_shows_the_book_settings_at_their_defaults(exchange: str) -> None:
    """config/exchanges/<name>.yaml shows them too, with the depths the worker accepts, in the
    words of its refusal of any other (shared/cli.py)."""
    text = (configuration.EXCHANGE_DIR / f"{exchange}.yaml").read_text()
    shown = _commented_settings(text, ("channels", "book_depth", "book_symbols"))
    default = configuration.ExchangeConfig(ws_url="", rest_url="")
    assert default.channels is None  # unset: both, as shown
    assert shown == {"channels": ["ticker", "book"], "book_depth": default.book_depth,
                     "book_symbols": default.book_symbols}
    venue_class = getattr(importlib.import_module(f"workers.{exchange}"), VENUE_CLASSES[exchange])
    comments = " ".join(line.removeprefix("# ") for line in text.splitlines() if line.startswith("# "))
    assert f"{exchange} serves {_depths(venue_class.book_depths)}" in comments


@pytest.mark.parametrize("header", [status.HEADER, topic_health.HEADER], ids=["workers", "topics"])
def test_status_example_has_the_columns_status_prints(header: tuple[str, ...]) -> None:
    lines = (ROOT / "docs" / "operations.md").read_text().splitlines()
    assert [re.split(r" {2,}", line.strip()) for line in lines].count(list(header)) == 1

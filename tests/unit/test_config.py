"""Bad configuration files get one ConfigError line naming the file, the key (or the
line) and what is wrong: never a traceback, never a value silently taken."""

from pathlib import Path

import pytest

from shared import config as configuration


def refusal(tmp_path: Path, content: bytes) -> str:
    override = tmp_path / "site.yaml"
    override.write_bytes(content)
    with pytest.raises(configuration.ConfigError) as refused:
        configuration.load(override)
    return str(refused.value)


@pytest.mark.parametrize("content, problem", [
    # A UnicodeDecodeError traceback: the file is read as UTF-8, and only OSError was caught.
    (b"runtime:\n  watchdog_s: 5  # \xff\n", "line 2: not UTF-8 text (byte 0xff)"),
    # PyYAML keeps the last of two equal keys: the first value was silently dropped.
    (b"runtime:\n  watchdog_s: 5\n  watchdog_s: 6\n",
     "line 3: malformed YAML: duplicate key 'watchdog_s' (first on line 2)"),
    (b"exchanges:\n  kraken: {book_depth: 25}\n  kraken: {book_depth: 100}\n",
     "line 3: malformed YAML: duplicate key 'kraken' (first on line 2)"),
])
def test_an_unreadable_file_is_one_line_naming_the_line(tmp_path: Path, content: bytes, problem: str) -> None:
    assert refusal(tmp_path, content) == f"{tmp_path / 'site.yaml'}: {problem}"


def test_keys_beside_a_merge_key_override_the_merged_ones(tmp_path: Path) -> None:
    override = tmp_path / "site.yaml"
    override.write_text("exchanges:\n  kraken: &kraken {book_depth: 25, channels: [book]}\n"
                        "  binance: {<<: *kraken, book_depth: 20, symbols: [BTC-USDT]}\n")
    binance = configuration.load(override).exchange("binance")
    assert (binance.book_depth, binance.channels) == (20, ["book"])

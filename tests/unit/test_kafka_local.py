"""kafka/kafka-local.sh's own refusals: one line naming what is wrong, exit 1, before
anything is fetched or started. Hermetic: a cache holding a stand-in for the core jar
(the script fetches nothing when it is there) and ports nobody listens on."""

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.harness import ROOT, free_ports

SCRIPT = ROOT / "kafka" / "kafka-local.sh"


def _start(tmp_path: Path, java: str) -> subprocess.CompletedProcess[str]:
    version = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", (ROOT / "kafka" / "pom.xml").read_text())
    assert version is not None
    libs = tmp_path / "cache" / f"kafka-libs-{version.group(1)}"
    libs.mkdir(parents=True)
    (libs / f"kafka_2.13-{version.group(1)}.jar").touch()
    port, controller = free_ports(2)
    env = {**os.environ, "COINSTREAM_CACHE": str(tmp_path / "cache"), "KAFKA_RUN_DIR": str(tmp_path / "run"),
           "KAFKA_PORT": str(port), "KAFKA_CONTROLLER_PORT": str(controller), "JAVA": java}
    return subprocess.run(["bash", str(SCRIPT), "start"], env=env, capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("version_line, says", [
    (None, "there is no '{java}' on PATH"),
    ('java version "1.8.0_392"', "is older (java version \"1.8.0_392\")"),
    ('openjdk version "11.0.21" 2023-10-17', "is older (openjdk version \"11.0.21\" 2023-10-17)"),
])
def test_a_missing_or_old_java_is_one_line(tmp_path: Path, version_line: str | None, says: str) -> None:
    java = tmp_path / "java"
    if version_line is not None:
        java.write_text(f"#!/bin/sh\necho '{version_line}' >&2\n")
        java.chmod(0o755)
    done = _start(tmp_path, str(java))
    assert done.returncode == 1
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("kafka-local: Java 17+ runs the broker") and says.format(java=java) in line, line
    assert not (tmp_path / "run").exists()  # nothing formatted


def test_java_17_passes_the_check(tmp_path: Path) -> None:
    java = tmp_path / "java"
    # The check passes; the stand-in then fails at formatting, with the script's own line.
    java.write_text("#!/bin/sh\necho 'openjdk version \"17.0.15\" 2025-04-15' >&2\nexit 1\n")
    java.chmod(0o755)
    done = _start(tmp_path, str(java))
    assert done.returncode == 1
    assert "Java 17+" not in done.stderr and "formatting" in done.stderr, done.stderr

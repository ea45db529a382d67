"""The package as `make setup` installs it: pip's editable install of the checkout,
quiet when nothing is wrong (it printed setuptools' "Editable installation" warning
at every `make run` after a change to setup.cfg), on the Pythons it allows."""

import configparser
import platform
import subprocess
import sys
import sysconfig
from pathlib import Path

from packaging.specifiers import SpecifierSet

from tests.harness import ROOT, fresh_checkout


def test_python_3_11_to_3_13_are_allowed() -> None:
    """Ubuntu 24.04 and Debian 13 ship 3.12 and 3.13; make test runs on 3.11 and .ci/run
    runs the unit tests again on 3.13, so this runs on each end of the range."""
    metadata = configparser.ConfigParser()
    metadata.read(ROOT / "setup.cfg")
    allowed = SpecifierSet(metadata["options"]["python_requires"])
    assert [minor for minor in ("3.10", "3.11", "3.12", "3.13", "3.14") if f"{minor}.0" in allowed] == [
        "3.11", "3.12", "3.13"]
    assert platform.python_version() in allowed


def _installed_here() -> list[str]:
    """The files of this environment's own coinstream install (make setup's), if any."""
    return sorted(path.name for path in Path(sysconfig.get_paths()["purelib"]).glob("*coinstream*"))


def test_editable_install_prints_nothing(tmp_path: Path) -> None:
    checkout = fresh_checkout(tmp_path / "coinstream")
    prefix = tmp_path / "prefix"
    installed = _installed_here()
    # The Makefile's command, without the dependencies (the .venv has them) and into a
    # prefix of the test's own instead of the .venv. --ignore-installed: otherwise pip
    # uninstalls the .venv's coinstream first, and the tests after this one lost
    # `.venv/bin/coinstream` and `python -m coinstream` outside the checkout.
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--ignore-installed",
                           "-e", str(checkout), "--prefix", str(prefix)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout + done.stderr == ""
    assert _installed_here() == installed
    [site_packages] = prefix.glob("lib/python*/site-packages")
    # A path entry for the checkout: coinstream, shared, workers and simulator import from it.
    assert (site_packages / "__editable__.coinstream-0.1.0.pth").read_text().split() == [str(checkout)]

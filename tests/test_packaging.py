"""The wheel as a release builds it, installed by installer/install.sh into a fresh
virtualenv: its commands run, and `service install` from it points into that venv.

No S3 and no keyring: nothing here is a service test. The wheel is built once per module
(`python -m build`: the sdist, then the wheel from the sdist, in an isolated build env
that pip fills from PyPI) and installed once (its dependencies from PyPI). Both go through
the user's real pip cache, found before the session isolates HOME (see `PIP_CACHE`), so a
warm run takes about half a minute.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
INSTALL_SH = REPO / "installer" / "install.sh"
# Read at import, i.e. at collection, before conftest's `_isolated_home` points HOME and
# XDG_CACHE_HOME at empty temp dirs: the developer's cache makes the installs fast.
PIP_CACHE = os.environ.get("PIP_CACHE_DIR") or os.fspath(
    Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pip"
)


def run(
    *args: str | os.PathLike[str], env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a command with the real pip cache; outside the checkout unless `cwd` says."""
    return subprocess.run(
        [os.fspath(a) for a in args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        # No .pyc compiling of boto3 & co at install: CPU the test does not need.
        env={**os.environ, "PIP_CACHE_DIR": PIP_CACHE, "PIP_NO_COMPILE": "1", **(env or {})},
        cwd=cwd or Path(PIP_CACHE).anchor,  # not the checkout: `-c` would import from it
        timeout=600,
        check=False,
    )


@dataclass
class Installed:
    wheel: Path
    sdist: Path
    venv: Path
    bin: Path
    config_home: Path
    first_output: str


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    base = tmp_path_factory.mktemp("packaging")
    dist = base / "dist"
    built = run(sys.executable, "-m", "build", "--outdir", dist, REPO)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (wheel,) = dist.glob("s3vault-*.whl")
    (sdist,) = dist.glob("s3vault-*.tar.gz")
    venv, bin_dir = base / "venv", base / "bin"
    done = run(INSTALL_SH, "--venv", venv, "--bin", bin_dir, wheel)
    assert done.returncode == 0, done.stdout + done.stderr
    yield Installed(wheel, sdist, venv, bin_dir, base / "config", done.stdout)


def test_the_wheel_carries_what_the_program_needs_at_run_time(installed: Installed) -> None:
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    icons = {f"s3vault/gui/icons/{n}.svg" for n in ("app", "idle", "syncing", "paused",
                                                      "offline", "error", "attention")}
    assert {"s3vault/py.typed", "s3vault/agent/units.py", *icons} <= names
    (entry_points,) = (n for n in names if n.endswith(".dist-info/entry_points.txt"))
    scripts = zipfile.ZipFile(installed.wheel).read(entry_points).decode()
    assert "s3vault = s3vault.cli.main:main" in scripts
    assert "s3vault-gui = s3vault.gui.app:main" in scripts
    assert installed.sdist.stat().st_size > 0  # the wheel was built from it


def test_the_installed_commands_run_from_the_fresh_venv(installed: Installed) -> None:
    link = installed.bin / "s3vault"
    assert os.readlink(link) == os.fspath(installed.venv / "bin" / "s3vault")
    helped = run(link, "--help")
    assert helped.returncode == 0 and "service" in helped.stdout, helped.stderr
    schema = run(link, "config", "schema")
    assert schema.returncode == 0, schema.stderr
    assert json.loads(schema.stdout)["type"] == "object"
    # It is the venv's own s3vault, not the checkout's.
    where = run(installed.venv / "bin" / "python", "-c", "import s3vault; print(s3vault.__file__)")
    assert where.stdout.startswith(os.fspath(installed.venv)), where.stdout


def test_service_install_from_the_venv_runs_the_venv_s3vault(installed: Installed) -> None:
    done = run(
        installed.bin / "s3vault", "service", "install", "--no-start", "--json",
        env={"XDG_CONFIG_HOME": os.fspath(installed.config_home)},
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["exec_start"] == [os.fspath(installed.venv / "bin" / "s3vault"), "agent",
                                    "--foreground"]
    unit = installed.config_home / "systemd/user/s3vault-agent.service"
    assert f"\nExecStart={installed.venv}/bin/s3vault agent --foreground\n" in unit.read_text()
    # No `gui` extra in this venv: no autostart entry for an app that is not there.
    assert not (installed.config_home / "autostart/s3vault.desktop").exists()
    assert any("desktop app is not installed" in w for w in report["warnings"])


def test_install_script_refuses_to_replace_a_command_it_did_not_link(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "s3vault").write_text("#!/bin/sh\necho mine\n")
    done = run(INSTALL_SH, "--venv", tmp_path / "venv", "--bin", bin_dir, "s3vault")
    assert done.returncode == 8, done.stderr
    assert "not a link into" in done.stderr
    assert (bin_dir / "s3vault").read_text() == "#!/bin/sh\necho mine\n"
    assert not (tmp_path / "venv").exists()  # refused before anything was made


def test_install_script_help_and_usage_errors() -> None:
    helped = run(INSTALL_SH, "--help")
    assert helped.returncode == 0 and "--uninstall" in helped.stdout
    wrong = run(INSTALL_SH, "--no-such-option")
    assert wrong.returncode == 2 and "see --help" in wrong.stderr


# Last: it removes the module's venv.
def test_install_script_is_idempotent_then_uninstalls_what_it_installed(
    installed: Installed,
) -> None:
    assert "created:" in installed.first_output and "linked:" in installed.first_output
    link = installed.bin / "s3vault"
    before = os.lstat(link)
    again = run(INSTALL_SH, "--venv", installed.venv, "--bin", installed.bin, installed.wheel)
    assert again.returncode == 0, again.stderr
    assert "created:" not in again.stdout and "linked:" not in again.stdout
    assert (os.lstat(link).st_ino, os.lstat(link).st_mtime_ns) == (
        before.st_ino, before.st_mtime_ns,
    )
    gone = run(
        INSTALL_SH, "--venv", installed.venv, "--bin", installed.bin, "--uninstall",
        env={"XDG_CONFIG_HOME": os.fspath(installed.config_home)},
    )
    assert gone.returncode == 0, gone.stderr
    assert not link.is_symlink() and not installed.venv.exists()
    # It ran `s3vault service uninstall` first: the unit pointing into the venv is gone.
    assert not (installed.config_home / "systemd/user/s3vault-agent.service").exists()

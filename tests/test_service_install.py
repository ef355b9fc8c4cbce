"""`s3vault service install | uninstall | status`: the systemd user unit and the XDG
autostart entries, written for this install's real commands, idempotently.

No systemd user manager can run in this test machine (a container: `systemctl --user`
says "Failed to connect to bus" or "offline"), which is the "no systemd" case, tested as
it is. The files are checked with the real `systemd-analyze verify`. What install asks of
a *reachable* manager (daemon-reload, enable, start, restart, disable) is tested against a
stand-in `systemctl` that records its calls and keeps enabled/active as two files.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from cli_checks import fails, ok

from s3vault.agent import units
from s3vault.errors import ExitCode, UsageError

REPO = Path(__file__).resolve().parent.parent
BIN_DIR = Path(sys.executable).absolute().parent
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")

FAKE_SYSTEMCTL = textwrap.dedent(
    """\
    #!/bin/sh
    # A stand-in for `systemctl --user`: logs each call, keeps the unit's state in files.
    state=$(dirname "$0")
    echo "$*" >> "$state/calls.log"
    [ "$1" = --user ] || exit 2
    shift
    case "$1" in
      is-system-running) echo running ;;
      is-enabled) if [ -e "$state/enabled" ]; then echo enabled; else echo disabled; exit 1; fi ;;
      is-active) if [ -e "$state/active" ]; then echo active; else echo inactive; exit 3; fi ;;
      enable) touch "$state/enabled" ;;
      start|restart) touch "$state/active" ;;
      disable) rm -f "$state/enabled" "$state/active" ;;
      daemon-reload) ;;
      *) echo "unexpected: $*" >&2; exit 1 ;;
    esac
    """
)


def run_s3vault(
    config_home: Path, *args: str, path: str | None = None
) -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ, XDG_CONFIG_HOME=os.fspath(config_home))
    if path is not None:
        env["PATH"] = path
    return subprocess.run(
        [sys.executable, "-m", "s3vault", *args],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        env=env,
        timeout=120,
        check=False,
    )


def install_json(
    config_home: Path, *args: str, config: Path | None = None, path: str | None = None
) -> dict:
    """`[--config CONFIG] service install ARGS --json`, its report."""
    options = ["--config", os.fspath(config)] if config else []
    done = ok(run_s3vault(config_home, *options, "service", "install", *args, "--json", path=path))
    return json.loads(done.stdout)


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """(inode, mtime_ns) of every file under root: a rewrite changes one of them."""
    return {
        os.fspath(p.relative_to(root)): (p.stat().st_ino, p.stat().st_mtime_ns)
        for p in root.rglob("*")
        if p.is_file()
    }


def paths_of(config_home: Path) -> dict[str, Path]:
    return {
        "unit": config_home / "systemd/user/s3vault-agent.service",
        "agent": config_home / "autostart/s3vault-agent.desktop",
        "app": config_home / "autostart/s3vault.desktop",
    }


@pytest.fixture
def fake_systemctl(tmp_path: Path) -> tuple[str, Path]:
    """(PATH with the stand-in first, its state dir)."""
    state = tmp_path / "systemctl"
    state.mkdir()
    script = state / "systemctl"
    script.write_text(FAKE_SYSTEMCTL)
    script.chmod(0o755)
    return f"{state}{os.pathsep}{os.environ['PATH']}", state


def calls(state: Path) -> list[str]:
    """The state-changing calls (not the queries), and empties the log."""
    log = state / "calls.log"
    lines = log.read_text().splitlines() if log.exists() else []
    log.unlink(missing_ok=True)
    queries = ("--user is-system-running", "--user is-enabled", "--user is-active")
    return [line for line in lines if not line.startswith(queries)]


# -- without a systemd user manager (this machine, as it is) ------------------------------


def test_install_writes_the_unit_and_autostart_entries_with_this_install_path(
    tmp_path: Path,
) -> None:
    report = install_json(tmp_path)
    files = paths_of(tmp_path)
    unit = files["unit"].read_text()
    real = os.fspath(BIN_DIR / "s3vault")
    assert f"\nExecStart={real} agent --foreground\n" in unit
    assert report["exec_start"] == [real, "agent", "--foreground"]
    assert units.is_ours(unit)
    for key in ("Type=notify", "WatchdogSec=60", "RestartPreventExitStatus=2 8 9",
                "TimeoutStopSec=120", "Restart=on-failure", "NoNewPrivileges=yes"):
        assert f"\n{key}\n" in unit, key
    # The desktop app is installed in the test venv: its entry starts it minimized.
    assert f"\nExec={BIN_DIR / 's3vault-gui'} --minimized\n" in files["app"].read_text()
    assert stat.S_IMODE(files["unit"].stat().st_mode) == 0o644
    assert {item["role"]: item["action"] for item in report["files"]} == {
        "unit": "written",
        "agent-autostart": "written",
        "app-autostart": "written",
    }
    assert report["changed"] is True


def test_install_without_a_user_manager_writes_the_files_and_says_what_to_do(
    tmp_path: Path,
) -> None:
    done = ok(run_s3vault(tmp_path, "service", "install"))
    report = install_json(tmp_path)
    assert report["systemd"] == "unavailable"
    assert "user manager" in report["systemd_reason"]
    assert (report["started"], report["enabled"], report["active"]) == (False, None, None)
    # Where systemd cannot start the agent, its own autostart entry does, at login.
    agent_entry = paths_of(tmp_path)["agent"].read_text()
    assert f"\nExec={BIN_DIR / 's3vault'} agent --foreground\n" in agent_entry
    advice = "\n".join(report["instructions"])
    assert "loginctl enable-linger" in advice
    assert f"@reboot {BIN_DIR / 's3vault'} agent" in advice
    assert os.fspath(paths_of(tmp_path)["agent"]) in advice
    stderr = done.stderr.decode()
    assert "warning:" in stderr and "@reboot" in stderr


def test_second_install_changes_nothing_and_writes_nothing(tmp_path: Path) -> None:
    install_json(tmp_path)
    before = snapshot(tmp_path)
    report = install_json(tmp_path)
    assert report["changed"] is False
    assert {item["action"] for item in report["files"]} == {"unchanged"}
    assert snapshot(tmp_path) == before


def test_install_with_a_config_rewrites_the_unit_with_it(tmp_path: Path) -> None:
    install_json(tmp_path / "home")
    config = tmp_path / "my vault$%.yaml"  # a name that needs quoting in both formats
    config.write_text("bucket: b\n")
    report = install_json(tmp_path / "home", config=config)
    assert report["changed"] is True
    unit = paths_of(tmp_path / "home")["unit"].read_text()
    escaped = os.fspath(config).replace("$", "$$").replace("%", "%%")
    assert f'--config "{escaped}" agent --foreground\n' in unit
    app = paths_of(tmp_path / "home")["app"].read_text()
    assert '--config "' + os.fspath(config).replace("$", "\\\\$").replace("%", "%%") in app


def test_install_with_no_app_writes_no_app_entry_and_removes_its_own(tmp_path: Path) -> None:
    install_json(tmp_path)
    report = install_json(tmp_path, "--no-app")
    assert not paths_of(tmp_path)["app"].exists()
    assert {item["role"]: item["action"] for item in report["files"]}["app-autostart"] == (
        "removed"
    )


def test_install_refuses_to_replace_a_unit_it_did_not_write(tmp_path: Path) -> None:
    unit = paths_of(tmp_path)["unit"]
    unit.parent.mkdir(parents=True)
    mine = "[Service]\nExecStart=/opt/mine/s3vault agent --foreground\n"
    unit.write_text(mine)
    done = fails(run_s3vault(tmp_path, "service", "install"), ExitCode.CONFLICT)
    assert b"not written by s3vault" in done.stderr
    assert unit.read_text() == mine
    assert not paths_of(tmp_path)["app"].exists()  # nothing written at all


def test_uninstall_removes_what_install_wrote_and_leaves_the_users_files(
    tmp_path: Path,
) -> None:
    before = set(snapshot(tmp_path))
    install_json(tmp_path)
    # The user's own files next to ours: a drop-in and another autostart entry.
    drop_in = tmp_path / "systemd/user/s3vault-agent.service.d/override.conf"
    drop_in.parent.mkdir(parents=True)
    drop_in.write_text("[Service]\nNice=10\n")
    other = tmp_path / "autostart/backup-tool.desktop"
    other.write_text("[Desktop Entry]\nExec=s3vault gui --minimized\n")
    done = ok(run_s3vault(tmp_path, "service", "uninstall", "--json"))
    report = json.loads(done.stdout)
    assert report["changed"] is True
    assert {item["action"] for item in report["files"]} == {"removed"}
    assert set(snapshot(tmp_path)) == before | {
        os.fspath(drop_in.relative_to(tmp_path)),
        os.fspath(other.relative_to(tmp_path)),
    }
    again = json.loads(ok(run_s3vault(tmp_path, "service", "uninstall", "--json")).stdout)
    assert again["changed"] is False


def test_uninstall_leaves_a_unit_the_user_wrote(tmp_path: Path) -> None:
    unit = paths_of(tmp_path)["unit"]
    unit.parent.mkdir(parents=True)
    unit.write_text("[Service]\nExecStart=/bin/true\n")
    report = json.loads(ok(run_s3vault(tmp_path, "service", "uninstall", "--json")).stdout)
    assert unit.exists()
    assert {item["role"]: item["action"] for item in report["files"]}["unit"] == "kept"
    assert any("not written by s3vault" in warning for warning in report["warnings"])


def test_status_json_reports_the_files_systemd_and_the_agent(tmp_path: Path) -> None:
    install_json(tmp_path, "--no-app")
    report = json.loads(ok(run_s3vault(tmp_path, "service", "status", "--json")).stdout)
    files = paths_of(tmp_path)
    assert report == {
        "systemd": "unavailable",
        "systemd_reason": report["systemd_reason"],
        "unit": os.fspath(files["unit"]),
        "installed": True,
        "managed": True,
        "enabled": None,
        "active": None,
        "autostart": {
            "agent": {"path": os.fspath(files["agent"]), "installed": True, "managed": True},
            "app": {"path": os.fspath(files["app"]), "installed": False, "managed": False},
        },
        "agent": None,  # no agent runs in this test's runtime dir
    }
    assert report["systemd_reason"]


# -- the unit as systemd reads it -------------------------------------------------------


def systemd_verify(unit: Path) -> subprocess.CompletedProcess[str]:
    """`systemd-analyze --user verify` without a running manager: it needs only
    XDG_RUNTIME_DIR (set by the session) and --man=no (no man pages to look up)."""
    assert SYSTEMD_ANALYZE, "systemd-analyze (Debian package systemd) is not installed"
    return subprocess.run(
        [SYSTEMD_ANALYZE, "--user", "verify", "--man=no", os.fspath(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_systemd_analyze_verify_accepts_the_installed_unit(tmp_path: Path) -> None:
    install_json(tmp_path)
    done = systemd_verify(paths_of(tmp_path)["unit"])
    # Unknown or misspelt keys are only warnings for systemd: no output at all, then.
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_systemd_analyze_verify_reads_back_an_awkward_path(tmp_path: Path) -> None:
    # verify checks that ExecStart's executable exists: a wrong quoting would miss it.
    awkward = tmp_path / "dir with space, 100% $HOME"
    awkward.mkdir()
    program = awkward / "s3vault"
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    unit = tmp_path / units.UNIT_NAME
    config = 'my "vault" 100% $HOME\\x.yaml'
    unit.write_text(units.render_unit([os.fspath(program), "--config", config, "agent"]))
    done = systemd_verify(unit)
    assert (done.returncode, done.stderr) == (0, "")
    assert '--config "my \\"vault\\" 100%% $$HOME\\\\x.yaml" agent\n' in unit.read_text()
    program.unlink()  # and the same text without the program fails: it was looked up
    assert systemd_verify(unit).returncode != 0


def test_a_program_path_systemd_cannot_run_is_refused_with_advice() -> None:
    # systemd rejects quotes and backslashes in the executable ("special characters").
    with pytest.raises(UsageError, match="quote or a backslash") as caught:
        units.render_unit(["/opt/it's here/s3vault", "agent"])
    assert caught.value.hint


def test_installer_copies_match_the_packaged_templates() -> None:
    def body(text: str) -> list[str]:
        lines = text.splitlines()
        start = next(i for i, line in enumerate(lines) if line.startswith("["))
        return [line for line in lines[start:] if not line.startswith(("ExecStart=", "Exec="))]

    shipped = (REPO / "installer/systemd/s3vault-agent.service").read_text()
    assert "\nExecStart=%h/.local/bin/s3vault agent --foreground\n" in shipped
    assert body(shipped) == body(units.render_unit(["/x"]))
    entry = (REPO / "installer/autostart/s3vault-agent.desktop").read_text()
    rendered = units.render_agent_autostart(["s3vault", "agent", "--foreground"])
    assert [line for line in body(entry) if not line.startswith("#")] == [
        line for line in body(rendered) if not line.startswith("#")
    ]
    assert "\nExec=s3vault agent --foreground\n" in entry
    # install-desktop.sh --autostart marks its entry as ours, like install does.
    assert units.MARKER in (REPO / "installer/install-desktop.sh").read_text()


def test_agent_libraries_run_under_memory_deny_write_execute(tmp_path: Path) -> None:
    """The unit's MemoryDenyWriteExecute=yes, checked with the kernel's own switch
    (prctl PR_SET_MDWE, Linux 6.3+): the agent's libraries encrypt, watch and trim
    without asking for writable executable memory."""
    script = textwrap.dedent(
        f"""
        import ctypes, mmap, time
        libc = ctypes.CDLL(None, use_errno=True)
        assert libc.prctl(65, 1, 0, 0, 0) == 0, ctypes.get_errno()   # PR_SET_MDWE
        try:
            mmap.mmap(-1, 4096, prot=7)
            raise SystemExit("W+X memory was allowed: the check checks nothing")
        except OSError:
            pass
        import boto3, obstore, keyring, secretstorage
        import s3vault.agent.daemon
        from s3vault.agent.trim import release_free_memory
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        from watchdog.observers import Observer
        from watchdog.events import FileSystemEventHandler
        AESGCM(AESGCM.generate_key(256)).encrypt(b"0" * 12, b"x" * 100_000, None)
        observer = Observer()
        observer.schedule(FileSystemEventHandler(), {os.fspath(tmp_path)!r}, recursive=True)
        observer.start()
        open({os.fspath(tmp_path / "f")!r}, "w").write("x")
        time.sleep(0.2)
        observer.stop(); observer.join()
        release_free_memory()
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert (done.returncode, done.stdout.strip()) == (0, "ok"), done.stderr


# -- with a reachable user manager (a stand-in systemctl) -------------------------------


def test_install_enables_and_starts_then_restarts_only_on_a_change(
    tmp_path: Path, fake_systemctl: tuple[str, Path]
) -> None:
    path, state = fake_systemctl
    home = tmp_path / "home"
    first = install_json(home, path=path)
    assert calls(state) == [
        "--user daemon-reload",
        "--user enable s3vault-agent.service",
        "--user start s3vault-agent.service",
    ]
    assert (first["systemd"], first["enabled"], first["active"], first["started"]) == (
        "available", True, True, True,
    )
    # With a manager the agent's own autostart entry would start a second agent.
    assert not paths_of(home)["agent"].exists()

    second = install_json(home, path=path)
    assert calls(state) == []
    assert (second["changed"], second["started"], second["restarted"]) == (False, False, False)

    config = tmp_path / "config.yaml"
    config.write_text("bucket: b\n")
    third = install_json(home, config=config, path=path)
    assert calls(state) == ["--user daemon-reload", "--user restart s3vault-agent.service"]
    assert (third["changed"], third["restarted"]) == (True, True)


def test_install_no_start_enables_only(tmp_path: Path, fake_systemctl: tuple[str, Path]) -> None:
    path, state = fake_systemctl
    report = install_json(tmp_path, "--no-start", path=path)
    assert calls(state) == ["--user daemon-reload", "--user enable s3vault-agent.service"]
    assert (report["enabled"], report["active"], report["started"]) == (True, False, False)


def test_install_with_a_manager_replaces_the_agent_autostart_entry(
    tmp_path: Path, fake_systemctl: tuple[str, Path]
) -> None:
    install_json(tmp_path)  # no manager: the agent's autostart entry
    assert paths_of(tmp_path)["agent"].exists()
    path, _ = fake_systemctl
    report = install_json(tmp_path, path=path)
    assert not paths_of(tmp_path)["agent"].exists()
    assert {item["role"]: item["action"] for item in report["files"]}["agent-autostart"] == (
        "removed"
    )


def test_uninstall_stops_and_disables_then_removes(
    tmp_path: Path, fake_systemctl: tuple[str, Path]
) -> None:
    path, state = fake_systemctl
    install_json(tmp_path, path=path)
    calls(state)
    report = json.loads(
        ok(run_s3vault(tmp_path, "service", "uninstall", "--json", path=path)).stdout
    )
    assert calls(state) == [
        "--user disable --now s3vault-agent.service",
        "--user daemon-reload",
    ]
    assert report["stopped"] is True
    assert not paths_of(tmp_path)["unit"].exists()
    status = json.loads(ok(run_s3vault(tmp_path, "service", "status", "--json", path=path)).stdout)
    assert (status["installed"], status["enabled"], status["active"]) == (False, False, False)

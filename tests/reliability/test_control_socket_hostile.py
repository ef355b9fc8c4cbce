"""The agent's control socket against another user and against hostile messages.

Two locks keep another user out: the socket is 0600 in a 0700 runtime dir (the kernel
refuses the connect), and the agent checks the peer's uid (SO_PEERCRED) in case the
socket is reached anyway. Both are tried with a client running as ``nobody`` (root is
not stopped by modes). Then garbage, a 100 MB line without newline, half-written
requests (closed, or held open by many clients at once: a slowloris) must leave the
agent up, answering a normal client, with its memory bounded by the 1 MiB line cap.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from agent_helpers import AgentProcs, agent_procs, environ, write_config
from reliability_report import ReliabilityReport

from s3vault.agent.client import AgentClient
from s3vault.errors import ExitCode

NOBODY = 65534
AS_NOBODY = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
# Plain Python, no venv: nobody may not read the venv; the socket is all it needs.
_NOBODY_CLIENT = """
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
except OSError as e:
    print(json.dumps({"connect": e.__class__.__name__})); sys.exit(0)
try:
    s.sendall(b'{"verb": "stop", "args": {}}\\n')
except BrokenPipeError:
    pass  # refused at once: the reply is already there
print(json.dumps({"reply": json.loads(s.makefile("rb").readline())}))
"""


@pytest.fixture
def agent(run_cli: Any, bucket: str, tmp_path: Path) -> Iterator[AgentProcs]:
    assert run_cli("key", "generate", "agent-key").returncode == 0
    folder = tmp_path / "folder"
    folder.mkdir()
    config = write_config(tmp_path / "config.yaml", folder, bucket)
    for procs in agent_procs(config, environ()):
        procs.start()
        yield procs


def status(agent: AgentProcs) -> dict[str, Any]:
    with AgentClient(agent.socket, timeout=30) as client:
        return client.status()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def as_nobody(path: Path) -> dict[str, Any]:
    done = subprocess.run(
        [*AS_NOBODY, "/usr/bin/python3", "-I", "-c", _NOBODY_CLIENT, str(path)],
        capture_output=True,
        timeout=60,
        check=False,
        cwd="/",
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def test_another_user_can_neither_reach_nor_use_the_control_socket(
    agent: AgentProcs, reliability: ReliabilityReport
) -> None:
    assert stat.S_IMODE(agent.socket.stat().st_mode) == 0o600
    assert stat.S_IMODE(agent.socket.parent.stat().st_mode) == 0o700
    # 1. The modes: nobody cannot even connect.
    assert as_nobody(agent.socket) == {"connect": "PermissionError"}
    # 2. The socket reached anyway (a link in an open folder, the socket opened up):
    # the agent refuses the peer by its uid.
    open_dir = Path(tempfile.mkdtemp(prefix="s3vo-", dir="/tmp"))  # beside it: same mount
    os.chmod(open_dir, 0o755)  # noqa: S103 - the point: reachable by nobody
    link = open_dir / "agent.sock"
    os.link(agent.socket, link)
    os.chmod(link, 0o666)  # noqa: S103 - same inode: the agent's socket, opened up
    try:
        reply = as_nobody(link)["reply"]
    finally:
        os.chmod(link, 0o600)
        link.unlink()
        open_dir.rmdir()
    assert reply["ok"] is False
    assert reply["error"]["exit_code"] == int(ExitCode.ACCESS_DENIED)
    assert f"uid {NOBODY}" in reply["error"]["message"]
    # The stop it asked for did not happen.
    assert agent.procs[0].poll() is None and status(agent)["pid"] == agent.procs[0].pid
    reliability.hostile_input("control socket: client of another user", 2)


def test_garbage_huge_and_half_written_messages_leave_the_agent_up_and_answering(
    agent: AgentProcs, reliability: ReliabilityReport, soak: bool
) -> None:
    pid = agent.procs[0].pid
    status(agent)
    rss_before = rss_kib(pid)
    # Garbage lines on one connection: each gets an error reply, the connection lives.
    garbage = [os.urandom(200).replace(b"\n", b" ") + b"\n" for _ in range(20)]
    garbage += [b"[]\n", b"null\n", b'{"verb": "rm -rf"}\n', b'{"verb": 1}\n', b"{\n"]
    garbage += [b'{"verb": "status", "args": [1]}\n', b"\xc3\xa9\xed\xa0\x80\n"]
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(agent.socket))
        s.settimeout(30)
        reader = s.makefile("rb")
        for line in garbage:
            s.sendall(line if line.endswith(b"\n") else line + b"\n")
            reply = json.loads(reader.readline())
            assert reply["ok"] is False and reply["error"]["exit_code"] == int(ExitCode.USAGE)
        s.sendall(b'{"verb": "status"}\n')
        assert json.loads(reader.readline())["ok"] is True  # the same connection still works
    reliability.hostile_input("control socket: garbage line", len(garbage))

    # Half-written requests held open (a slowloris) do not keep others out.
    held = []
    for _ in range(200 if soak else 40):
        s = socket.socket(socket.AF_UNIX)
        s.connect(str(agent.socket))
        s.sendall(b'{"verb": "sta')
        held.append(s)
    try:
        assert status(agent)["pid"] == pid
    finally:
        for s in held:
            s.close()  # a half request, then gone
    reliability.hostile_input("control socket: half-written request", len(held))

    # A huge line without newline: read up to the 1 MiB cap, answered, hung up.
    size = (1024 if soak else 100) * 1024 * 1024
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(agent.socket))
        s.settimeout(60)
        reply_line: list[bytes] = []
        reading = threading.Thread(target=lambda: reply_line.append(s.makefile("rb").readline()))
        reading.start()
        chunk, sent = b"x" * (1024 * 1024), 0
        try:
            while sent < size:
                s.sendall(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the agent hung up after its cap, as it should
        reading.join(60)
    reply = json.loads(reply_line[0])
    assert reply["ok"] is False and "longer than" in reply["error"]["message"]
    assert sent < size  # it stopped reading: nothing like 100 MB was taken in
    reliability.hostile_input("control socket: 100 MB line", 1)

    assert agent.procs[0].poll() is None
    assert status(agent)["pid"] == pid
    grown_mib = (rss_kib(pid) - rss_before) / 1024
    what = "control socket: agent RSS growth after hostile messages"
    reliability.figure(what, f"{grown_mib:.1f} MiB")
    assert grown_mib < 32, f"the agent grew by {grown_mib:.1f} MiB"

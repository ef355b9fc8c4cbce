"""The agent's local safety checks, in-process: lock, runtime dir, socket file."""

from __future__ import annotations

import os
import socket

import pytest

from s3vault.agent.lock import AgentLock, AgentRunningError
from s3vault.agent.paths import check_private_dir
from s3vault.agent.server import ControlServer, remove_stale_socket
from s3vault.agent.status import AgentStatus
from s3vault.errors import ExitCode, RefusedError


def test_lock_is_exclusive_and_names_the_holder(tmp_path):
    path = tmp_path / "agent.lock"
    with AgentLock(path):
        with pytest.raises(AgentRunningError) as info:
            AgentLock(path).acquire()
        assert info.value.message == f"an s3vault agent is already running (pid {os.getpid()})"
        assert info.value.exit_code == ExitCode.CONFLICT
    with AgentLock(path):  # released: free again
        pass


def test_private_dir_checks(tmp_path):
    ok = tmp_path / "ok"
    ok.mkdir(mode=0o700)
    check_private_dir(ok)
    for mode in (0o750, 0o705, 0o777):
        os.chmod(ok, mode)
        with pytest.raises(RefusedError, match="accessible to other users"):
            check_private_dir(ok)
    link = tmp_path / "link"
    link.symlink_to(ok)
    with pytest.raises(RefusedError, match="not a directory"):
        check_private_dir(link)


def test_stale_socket_removed_other_files_kept(tmp_path):
    stale = tmp_path / "agent.sock"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(stale))
    remove_stale_socket(stale)
    assert not stale.exists()
    remove_stale_socket(stale)  # nothing there: fine
    precious = tmp_path / "notes.txt"
    precious.write_text("mine")
    with pytest.raises(RefusedError, match="not a socket"):
        remove_stale_socket(precious)
    assert precious.read_text() == "mine"


def test_too_long_socket_path_is_a_clear_error(tmp_path):
    path = tmp_path / ("x" * 120) / "agent.sock"
    with pytest.raises(RefusedError, match="too long") as info:
        ControlServer(path, lambda r: {}, AgentStatus([]))
    assert "XDG_RUNTIME_DIR" in info.value.hint


def test_freed_memory_goes_back_to_the_os_after_a_full_run():
    import sys

    from s3vault.agent.trim import _malloc_trim, release_free_memory

    if sys.platform.startswith("linux"):
        assert _malloc_trim() is not None  # glibc: the agent can trim its heap
    release_free_memory()  # and calling it is always safe

"""What the ``run_cli`` fixture is: its type, its time-out, and the unprivileged prefix.

Here, not in conftest.py, so that test modules can import them: ``conftest`` is not
a module name to import from (tests/reliability has a conftest.py of its own, and
whichever loaded last would answer to that name).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from typing import Protocol

CLI_TIMEOUT = 300.0

UNPRIVILEGED = (
    ["setpriv", "--bounding-set=-dac_override,-dac_read_search"] if os.geteuid() == 0 else []
)
"""A command prefix under which root, too, obeys file permissions: without these two
capabilities a process cannot write a folder or read a file its mode forbids (a
permission-denied case is then a real one, as for a user)."""


class RunCli(Protocol):
    """Type of the ``run_cli`` fixture, for annotations in test modules."""

    def __call__(
        self,
        *args: str | os.PathLike[str],
        input: bytes | None = None,
        env: Mapping[str, str | None] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        timeout: float = CLI_TIMEOUT,
        unprivileged: bool = False,
    ) -> subprocess.CompletedProcess[bytes]: ...

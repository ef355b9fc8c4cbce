"""How every s3vault process starts: no core dumps, and the log level the user chose.

A process of s3vault holds master keys and data keys in memory (the agent for as long
as it runs). A core dump would write them to disk, where systemd-coredump, abrt or a
plain ``core`` file keeps them readable long after; so each process turns core dumps
off (``RLIMIT_CORE`` 0) and, on Linux, marks itself not dumpable
(``PR_SET_DUMPABLE`` 0, as ssh-agent and gnome-keyring do), which also keeps other
processes of the user from attaching a debugger to read its memory.

``S3VAULT_LOG_LEVEL`` (debug, info, warning, error) sets the level of s3vault's own
loggers. Never of botocore's: its debug log prints request and response bodies, and
a KMS ``GenerateDataKey`` or ``Decrypt`` response body holds a plaintext data key.
"""

from __future__ import annotations

import logging
import os
import sys

from s3vault.errors import ConfigError

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}
LEVELS["error"] = logging.ERROR
_PR_SET_DUMPABLE = 4


def no_core_dumps() -> None:
    """Forbid core dumps of this process (best effort where the OS has no such knob)."""
    try:
        import resource
    except ImportError:  # Windows: no core files
        return
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None).prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)


def log_level(default: int = logging.INFO) -> int:
    """The level ``S3VAULT_LOG_LEVEL`` asks for, else ``default``; ConfigError if unknown."""
    given = os.environ.get("S3VAULT_LOG_LEVEL", "").strip().lower()
    if not given:
        return default
    if given not in LEVELS:
        raise ConfigError(
            f"S3VAULT_LOG_LEVEL={given!r} is not a log level",
            hint=f"Use one of: {', '.join(LEVELS)}.",
        )
    return LEVELS[given]


def log_to(handler: logging.Handler, default: int = logging.INFO) -> None:
    """Send s3vault's log records (not the libraries') to ``handler``, at the chosen level."""
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("s3vault")
    root.addHandler(handler)
    root.setLevel(log_level(default))

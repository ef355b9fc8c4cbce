"""What the command-line tests assert of every `s3vault` run: success, or a failure
with its documented exit code, explained, and without a traceback."""

from __future__ import annotations

import subprocess

from s3vault.errors import ExitCode


def ok(result: subprocess.CompletedProcess[bytes]) -> subprocess.CompletedProcess[bytes]:
    assert result.returncode == 0, (result.returncode, result.stderr.decode())
    return result


def fails(
    result: subprocess.CompletedProcess[bytes], code: ExitCode
) -> subprocess.CompletedProcess[bytes]:
    assert result.returncode == code, (result.returncode, result.stderr.decode())
    assert b"Traceback" not in result.stderr
    # Explained on stderr, or with --json in the report on stdout.
    assert result.stderr.strip() or result.stdout.strip(), "a failure must be explained"
    return result

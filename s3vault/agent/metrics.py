"""The agent's numbers in the Prometheus text exposition format (docs/agent.md,
"Monitoring"), for node_exporter's textfile collector.

Pure: `render_metrics` turns a status snapshot, the agent's running totals and its
queue length into text; `s3vault.agent.metrics_file` writes it. Labels carry folder
ids (s3://BUCKET/PREFIX/) and states only, never a file name: the file is readable
by anyone on the machine (0644).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

STATES = ("idle", "syncing", "paused", "offline", "error")
"""Every agent state, so `s3vault_state` shows each with 0 or 1 (a state set)."""


def render_metrics(
    snapshot: Mapping[str, Any],
    totals: Mapping[str, Any],
    *,
    queue_length: int,
    up: bool = True,
) -> str:
    """The metrics text: HELP and TYPE lines, then the samples, newline-terminated.

    ``snapshot`` is `AgentStatus.snapshot()`, ``totals`` `AgentStatus.totals()`;
    ``up`` is False in the file the agent leaves behind when it stops.
    """
    attention = snapshot["attention"]
    folders = snapshot["folders"]
    last_success = totals["last_success"]
    out: list[str] = []
    _metric(out, "s3vault_up", "gauge", "1 while the agent runs; 0 once it stopped.", [((), up)])
    _metric(
        out,
        "s3vault_start_time_seconds",
        "gauge",
        "When the agent started (Unix time); the counters count from then.",
        [((), snapshot["started_at"])],
    )
    _metric(
        out,
        "s3vault_state",
        "gauge",
        "The agent's state: 1 for the current one, 0 for the others.",
        [((("state", s),), int(snapshot["state"] == s)) for s in STATES],
    )
    _metric(
        out,
        "s3vault_paused",
        "gauge",
        "1 when the whole agent is paused (s3vault pause).",
        [((), int(bool(snapshot["paused"])))],
    )
    _metric(
        out,
        "s3vault_folder_paused",
        "gauge",
        "1 when the folder is paused on its own or with the agent.",
        [(_folder(f), int(bool(f["paused"] or snapshot["paused"]))) for f in folders],
    )
    _metric(
        out,
        "s3vault_last_sync_timestamp_seconds",
        "gauge",
        "When the folder's last sync run ended (Unix time), with or without file errors.",
        [(_folder(f), f["last_sync"]) for f in folders if f["last_sync"] is not None],
    )
    _metric(
        out,
        "s3vault_last_success_timestamp_seconds",
        "gauge",
        "When the folder's last sync run with no file errors ended (Unix time).",
        [(_folder(f), last_success[f["folder"]]) for f in folders if f["folder"] in last_success],
    )
    _metric(
        out,
        "s3vault_queue_length",
        "gauge",
        "Changed files seen and not synced yet, plus those left in the run in progress.",
        [((), queue_length)],
    )
    _metric(
        out,
        "s3vault_file_errors",
        "gauge",
        "Files whose last sync failed (standing, as s3vault status lists them).",
        [((), attention["errors"])],
    )
    _metric(
        out,
        "s3vault_conflicts",
        "gauge",
        "Standing conflicts: objects another machine changed (nothing was overwritten).",
        [((), attention["conflicts"])],
    )
    _metric(
        out,
        "s3vault_folders_refused",
        "gauge",
        "Folders whose last run the safety guard refused (e.g. a mass delete).",
        [((), attention["refused"])],
    )
    _metric(
        out,
        "s3vault_errors_total",
        "counter",
        "Errors since the agent started: kind=file per file a run failed on, "
        "kind=run per run that failed as a whole (offline, refused, error).",
        [
            ((("kind", "file"),), totals["file_errors"]),
            ((("kind", "run"),), totals["runs_failed"]),
        ],
    )
    _metric(
        out,
        "s3vault_bytes_uploaded_total",
        "counter",
        "Plaintext bytes of the files uploaded since the agent started.",
        [((), totals["bytes_uploaded"])],
    )
    _metric(
        out,
        "s3vault_files_uploaded_total",
        "counter",
        "Files uploaded since the agent started.",
        [((), totals["files_uploaded"])],
    )
    return "\n".join(out) + "\n"


def queue_length(snapshot: Mapping[str, Any], waiting: int) -> int:
    """``waiting`` changed paths not synced yet, plus the files left in the run in
    progress (its progress counts files to upload)."""
    progress = snapshot.get("progress")
    left = progress["files_total"] - progress["files_done"] if progress else 0
    return waiting + max(left, 0)


Labels = tuple[tuple[str, str], ...]


def _folder(folder: Mapping[str, Any]) -> Labels:
    return (("folder", folder["folder"]),)


def _metric(
    out: list[str],
    name: str,
    kind: str,
    help_text: str,
    samples: Iterable[tuple[Labels, float]],
) -> None:
    out.append(f"# HELP {name} {help_text}")
    out.append(f"# TYPE {name} {kind}")
    for labels, value in samples:
        out.append(f"{name}{_labels(labels)} {_value(value)}")


def _labels(labels: Labels) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{name}="{escape_label(value)}"' for name, value in labels)
    return "{" + inner + "}"


def escape_label(value: str) -> str:
    """A label value as the exposition format writes it: backslash, double quote and
    line feed escaped (a bucket prefix may hold any of them)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _value(value: float) -> str:
    """Integers without a fraction, times with millisecond precision."""
    if isinstance(value, int):  # bool included
        return str(int(value))
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.3f}"

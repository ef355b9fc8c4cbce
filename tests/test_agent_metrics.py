"""The agent's Prometheus textfile (`agent.metrics_file`): the pure renderer against a
snapshot (exact text, label escaping), and a real agent writing a file that parses as
the text exposition format, with the last sync's time and the bytes it uploaded."""

from __future__ import annotations

import re
import stat
from pathlib import Path

from agent_helpers import agent_procs, environ, wait_for

from s3vault.agent.metrics import escape_label, queue_length, render_metrics


def snapshot(**changes):
    snap = {
        "state": "idle",
        "paused": False,
        "started_at": 1700000000.0,
        "progress": None,
        "attention": {"errors": 1, "conflicts": 2, "refused": 0},
        "folders": [
            {"folder": "s3://b/docs/", "paused": False, "last_sync": 1700000100.25},
            {"folder": 's3://b/odd"\\\n/', "paused": True, "last_sync": None},
        ],
    }
    snap.update(changes)
    return snap


TOTALS = {
    "bytes_uploaded": 4096,
    "files_uploaded": 3,
    "file_errors": 1,
    "runs_failed": 2,
    "last_success": {"s3://b/docs/": 1700000050.0},
}

EXPECTED = """\
# HELP s3vault_up 1 while the agent runs; 0 once it stopped.
# TYPE s3vault_up gauge
s3vault_up 1
# HELP s3vault_start_time_seconds When the agent started (Unix time); the counters count from then.
# TYPE s3vault_start_time_seconds gauge
s3vault_start_time_seconds 1700000000
# HELP s3vault_state The agent's state: 1 for the current one, 0 for the others.
# TYPE s3vault_state gauge
s3vault_state{state="idle"} 1
s3vault_state{state="syncing"} 0
s3vault_state{state="paused"} 0
s3vault_state{state="offline"} 0
s3vault_state{state="error"} 0
# HELP s3vault_paused 1 when the whole agent is paused (s3vault pause).
# TYPE s3vault_paused gauge
s3vault_paused 0
# HELP s3vault_folder_paused 1 when the folder is paused on its own or with the agent.
# TYPE s3vault_folder_paused gauge
s3vault_folder_paused{folder="s3://b/docs/"} 0
s3vault_folder_paused{folder="s3://b/odd\\"\\\\\\n/"} 1
# HELP s3vault_last_sync_timestamp_seconds When the folder's last sync run ended (Unix time), \
with or without file errors.
# TYPE s3vault_last_sync_timestamp_seconds gauge
s3vault_last_sync_timestamp_seconds{folder="s3://b/docs/"} 1700000100.250
# HELP s3vault_last_success_timestamp_seconds When the folder's last sync run with no file \
errors ended (Unix time).
# TYPE s3vault_last_success_timestamp_seconds gauge
s3vault_last_success_timestamp_seconds{folder="s3://b/docs/"} 1700000050
# HELP s3vault_queue_length Changed files seen and not synced yet, plus those left in the run \
in progress.
# TYPE s3vault_queue_length gauge
s3vault_queue_length 5
# HELP s3vault_file_errors Files whose last sync failed (standing, as s3vault status lists them).
# TYPE s3vault_file_errors gauge
s3vault_file_errors 1
# HELP s3vault_conflicts Standing conflicts: objects another machine changed (nothing was \
overwritten).
# TYPE s3vault_conflicts gauge
s3vault_conflicts 2
# HELP s3vault_folders_refused Folders whose last run the safety guard refused (e.g. a mass \
delete).
# TYPE s3vault_folders_refused gauge
s3vault_folders_refused 0
# HELP s3vault_errors_total Errors since the agent started: kind=file per file a run failed \
on, kind=run per run that failed as a whole (offline, refused, error).
# TYPE s3vault_errors_total counter
s3vault_errors_total{kind="file"} 1
s3vault_errors_total{kind="run"} 2
# HELP s3vault_bytes_uploaded_total Plaintext bytes of the files uploaded since the agent \
started.
# TYPE s3vault_bytes_uploaded_total counter
s3vault_bytes_uploaded_total 4096
# HELP s3vault_files_uploaded_total Files uploaded since the agent started.
# TYPE s3vault_files_uploaded_total counter
s3vault_files_uploaded_total 3
"""


def test_the_renderer_writes_exactly_the_documented_text_for_a_snapshot():
    assert render_metrics(snapshot(), TOTALS, queue_length=5) == EXPECTED


def test_label_values_escape_backslash_quote_and_newline():
    assert escape_label('a\\b"c\nd') == 'a\\\\b\\"c\\nd'
    line = next(
        line
        for line in render_metrics(snapshot(), TOTALS, queue_length=0).splitlines()
        if line.startswith("s3vault_folder_paused{") and "odd" in line
    )
    assert parse_sample(line) == ("s3vault_folder_paused", {"folder": 's3://b/odd"\\\n/'}, 1.0)


def test_a_stopped_agent_leaves_up_0_and_the_queue_counts_the_run_in_progress():
    text = render_metrics(snapshot(), TOTALS, queue_length=0, up=False)
    assert "\ns3vault_up 0\n" in text
    progress = {"files_total": 10, "files_done": 4}
    assert queue_length(snapshot(progress=progress), waiting=3) == 9
    assert queue_length(snapshot(), waiting=3) == 3


# ---- a small parser of the text exposition format (what node_exporter reads) --------

SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})? (?P<value>\S+)$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(?:,|$)')


def parse_sample(line: str) -> tuple[str, dict[str, str], float]:
    match = SAMPLE.match(line)
    assert match, f"not a sample line: {line!r}"
    labels: dict[str, str] = {}
    raw = match["labels"] or ""
    pos = 0
    while pos < len(raw):
        label = LABEL.match(raw, pos)
        assert label, f"bad labels in {line!r}"
        value = re.sub(r"\\(.)", lambda m: "\n" if m[1] == "n" else m[1], label[2])
        labels[label[1]] = value
        pos = label.end()
    return match["name"], labels, float(match["value"])


def parse_exposition(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Samples by metric name; every metric has HELP and TYPE before its samples."""
    assert text.endswith("\n")
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    typed: dict[str, str] = {}
    helped: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# HELP "):
            helped.add(line.split(" ")[2])
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in ("gauge", "counter"), line
            typed[name] = kind
        else:
            name, labels, value = parse_sample(line)
            assert name in typed and name in helped, f"{name}: sample before HELP/TYPE"
            if typed[name] == "counter":
                assert name.endswith("_total"), name
            samples.setdefault(name, []).append((labels, value))
    return samples


def test_a_real_agent_writes_a_parsable_metrics_file_after_a_sync(
    run_cli, keyring_service, bucket, tmp_path
):
    assert run_cli("key", "generate", "agent-key").returncode == 0
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text("hello metrics\n")
    metrics = tmp_path / "textfile" / "s3vault.prom"
    metrics.parent.mkdir()
    config = tmp_path / "config.yaml"
    config.write_text(
        "version: 1\n"
        "s3: {addressing_style: path}\n"
        "folders:\n"
        f"  - {{path: {folder}, bucket: {bucket}, prefix: docs, key: agent-key}}\n"
        "agent: {debounce_ms: 100, rescan_interval: 1h, workers: 2,"
        f" metrics_file: {metrics}}}\n"
    )
    folder_id = f"s3://{bucket}/docs/"
    for agents in agent_procs(config, environ()):
        agents.start()

        def synced() -> dict | None:
            if not metrics.exists():
                return None
            parsed = parse_exposition(metrics.read_text())
            return parsed if parsed.get("s3vault_last_sync_timestamp_seconds") else None

        parsed = wait_for(synced, "a metrics file written after the first sync")
        ((labels, last_sync),) = parsed["s3vault_last_sync_timestamp_seconds"]
        assert labels == {"folder": folder_id} and last_sync > 1.7e9
        assert parsed["s3vault_up"] == [({}, 1.0)]
        assert parsed["s3vault_bytes_uploaded_total"][0][1] == len("hello metrics\n")
        assert parsed["s3vault_files_uploaded_total"][0][1] == 1
        assert parsed["s3vault_last_success_timestamp_seconds"] == [(labels, last_sync)]
        assert stat.S_IMODE(metrics.stat().st_mode) == 0o644
        # Atomic: nothing but the file itself in the folder (no temp file left, none
        # named *.prom for the collector to read half-written).
        assert [p.name for p in metrics.parent.iterdir()] == ["s3vault.prom"]

        agents.stop_all()
        final = parse_exposition(metrics.read_text())
        assert final["s3vault_up"] == [({}, 0.0)]
        assert "a.txt" not in Path(metrics).read_text()  # folder ids only, no file names

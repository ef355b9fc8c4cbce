"""The `--json` output of every command has exactly the fields docs/json.md lists.

Each command runs once, for real (SeaweedFS, the private keyring, a detached agent),
in one module-wide set-up; each documented section is then checked against what its
command printed: every field the doc marks "always" is there, and no field is there
that the doc does not list (nested objects too, where the doc lists their fields).
A last test checks that every click command with a `--json` option has a section and
that every section names such a command.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import pytest
from agent_helpers import agent_procs, wait_for

DOC = Path(__file__).resolve().parent.parent / "docs" / "json.md"
# "### `s3vault status --json --flat` (agent not running)": the command is "status"
HEADING = re.compile(r"^### `?s3vault (?P<command>[a-z -]+?) --json[^`(]*`?(?: \([^)]+\))?\s*$")
ROW = re.compile(r"^\|\s*`(?P<field>[^`]+)`\s*\|[^|]*\|\s*(?P<always>yes|no)\s*\|")


@dataclass(frozen=True)
class Section:
    title: str  # e.g. "status --json --flat" or "sync --json (handed to the agent)"
    command: str  # e.g. "status", "config show"
    fields: dict[str, bool]  # field path -> always present


def parse_doc(text: str) -> dict[str, Section]:
    sections: dict[str, Section] = {}
    current: Section | None = None
    for line in text.splitlines():
        if line.startswith("#"):
            current = None
            if line.strip() == "### Errors":
                current = sections["errors"] = Section("errors", "", {})
                continue
            match = HEADING.match(line)
            if match:
                title = line.removeprefix("### ").replace("`", "").removeprefix("s3vault ")
                current = Section(title, match["command"], {})
                sections[title] = current
            continue
        row = ROW.match(line)
        if current is not None and row:
            current.fields[row["field"]] = row["always"] == "yes"
    return sections


SECTIONS = parse_doc(DOC.read_text(encoding="utf-8"))


def paths_of(value: Any, documented: set[str], prefix: str = "") -> set[str]:
    """The field paths of ``value`` (a.b, a[].b, [].b), followed only as deep as the
    doc lists fields: an object the doc describes as a whole is one path."""
    found: set[str] = set()
    if isinstance(value, list):
        for item in value:
            found |= paths_of(item, documented, prefix + "[].")
        return found
    if not isinstance(value, dict):
        return found
    for key, item in value.items():
        path = prefix + key
        found.add(path)
        if isinstance(item, dict) and any(d.startswith(path + ".") for d in documented):
            found |= paths_of(item, documented, path + ".")
        elif isinstance(item, list) and any(d.startswith(path + "[].") for d in documented):
            found |= paths_of(item, documented, path)
    return found


def expected_present(section: Section, value: Any) -> set[str]:
    """The "always" fields whose parent is present and not null or empty."""
    present = set()
    for path, always in section.fields.items():
        if not always:
            continue
        parent = re.sub(r"(\[\]\.|\.)?[^.\[\]]+$", "", path)
        if parent in ("", "[]") or _exists(value, parent):
            if parent == "[]" and not value:
                continue
            present.add(path)
    return present


def _exists(value: Any, path: str) -> bool:
    """Whether ``path`` (a.b, a[]) leads to a non-empty object or list in ``value``."""
    node: Any = value
    for part in re.findall(r"\[\]|[^.\[\]]+", path):
        if part == "[]":
            if not isinstance(node, list) or not node:
                return False
            node = node[0]
        else:
            if not isinstance(node, dict) or node.get(part) in (None, [], {}):
                return False
            node = node[part]
    return bool(node)


# ---- one set-up for the whole module ------------------------------------------------


class Cli:
    def __init__(self, env: dict[str, str], config: Path, cwd: Path) -> None:
        self.env, self.config, self.cwd = env, config, cwd

    def __call__(
        self, *args: str | os.PathLike[str], stdin: bytes = b""
    ) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [sys.executable, "-m", "s3vault", "--config", str(self.config), *map(str, args)],
            env=self.env,
            cwd=self.cwd,
            input=stdin,
            capture_output=True,
            timeout=120,
            check=False,
        )

    def json(self, *args: str | os.PathLike[str], code: int = 0, stdin: bytes = b"") -> Any:
        done = self(*args, stdin=stdin)
        assert done.returncode == code, (args, done.returncode, done.stderr.decode())
        return json.loads(done.stdout)


@pytest.fixture(scope="module")
def outputs(
    tmp_path_factory: pytest.TempPathFactory,
    session_env: dict[str, str],
    private_keyring: Any,
    s3: Any,
) -> Iterator[dict[str, Any]]:
    """Section title -> what its command printed (parsed), every command run once."""
    root = tmp_path_factory.mktemp("json")
    bucket = f"test-{uuid.uuid4().hex[:24]}"
    s3.create_bucket(bucket)
    env = dict(session_env, S3VAULT_KEYRING_SERVICE=f"s3vault-test-{uuid.uuid4().hex[:12]}")
    manual, synced, restored = root / "manual", root / "synced", root / "restored"
    for folder in (manual, synced):
        folder.mkdir()
        (folder / "one.txt").write_text("one\n")
        (folder / "two.txt").write_text("two, a little longer\n")
    config = root / "config.yaml"
    config.write_text(
        "version: 1\n"
        "s3: {addressing_style: path}\n"
        "folders:\n"
        f"  - {{path: {synced}, bucket: {bucket}, prefix: agent, key: k1}}\n"
        "agent: {debounce_ms: 100, rescan_interval: 1h, workers: 2}\n"
    )
    cli = Cli(env, config, root)
    for name in ("k1", "k2"):
        assert cli("key", "generate", name).returncode == 0
    (root / "a.txt").write_text("hello\n")
    out: defaultdict[str, list[Any]] = defaultdict(list)  # a section may get several
    url = f"s3://{bucket}/docs/a.txt"
    out["put --json"].append(cli.json("put", root / "a.txt", url, "--key", "k1", "--json"))
    out["get --json"].append(cli.json("get", url, root / "back.txt", "--json"))
    out["inspect --json"].append(cli.json("inspect", url, "--json"))
    out["ls --json"].append(cli.json("ls", f"s3://{bucket}/docs/", "--json"))
    out["ls --json (prefix entries)"].append(cli.json("ls", f"s3://{bucket}/", "--json"))
    out["rotate --json"].append(cli.json("rotate", url, "--to-key", "k2", "--json"))
    out["sync --json"].append(
        cli.json("sync", manual, f"s3://{bucket}/manual", "--key", "k1", "--json")
    )
    out["sync --json"].append(
        cli.json("sync", manual, f"s3://{bucket}/manual", "--dry-run", "--key", "k1", "--json")
    )
    out["restore --json"].append(cli.json("restore", f"s3://{bucket}/manual", restored, "--json"))
    out["rm --json"].append(cli.json("rm", url, "--json"))
    out["errors"].append(cli.json("get", url, root / "gone.txt", "--json", code=3))
    out["errors"].append(cli.json("rm", url, "--json", code=3))
    for sub in ("show", "validate", "env", "schema"):
        out[f"config {sub} --json"].append(cli.json("config", sub, "--json"))
    key_outputs(cli, root, out)
    service_outputs(Cli(dict(env, XDG_CONFIG_HOME=str(root / "xdg")), config, root), out)

    with contextlib.contextmanager(agent_procs)(config, env) as procs:
        agent_cli = Cli(procs.env, config, root)
        started = agent_cli.json("agent", "--json")
        out["agent --json"].append(started)
        try:
            out["status --json"].append(
                wait_for(
                    lambda: (
                        (s := agent_cli.json("status", "--json"))["folders"][0]["last_sync"] and s
                    ),
                    "the agent's first sync",
                )
            )
            out["status --json --flat"].append(agent_cli.json("status", "--json", "--flat"))
            for verb in ("pause", "resume", "sync-now"):
                out[f"{verb} --json"].append(agent_cli.json(verb, "--json"))
            for verb in ("pause", "resume", "sync-now"):
                reply = agent_cli.json(verb, "--folder", synced, "--json")
                out[f"{verb} --json" if verb != "pause" else "pause --json (with --folder)"].append(
                    reply
                )
            out["sync --json (handed to the agent)"].append(
                agent_cli.json("sync", synced, f"s3://{bucket}/agent", "--json")
            )
            out["stop --json"].append(agent_cli.json("stop", "--json"))
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(started["pid"], signal.SIGTERM)  # only if a step above failed
        out["status --json (agent not running)"].append(agent_cli.json("status", "--json", code=6))
        out["status --json --flat (agent not running)"].append(
            agent_cli.json("status", "--json", "--flat")
        )
    yield out
    s3.client().delete_bucket(Bucket=bucket)


def key_outputs(cli: Cli, root: Path, out: defaultdict[str, list[Any]]) -> None:
    """Every `key` command's JSON, the idempotent second runs included."""
    out["key generate --json"].append(cli.json("key", "generate", "k3", "--json"))
    out["key generate --json"].append(cli.json("key", "generate", "k3", "--if-missing", "--json"))
    material = base64.b64encode(os.urandom(32))
    for _ in range(2):  # created, then unchanged
        out["key import --json"].append(
            cli.json(
                "key", "import", "k4", "--type", "aes", "--file", "-", "--json", stdin=material
            )
        )
    out["key use --json"].append(cli.json("key", "use", "k3", "--json"))
    out["key list --json"].append(cli.json("key", "list", "--json"))
    out["key delete --json"].append(cli.json("key", "delete", "k4", "--yes", "--json"))
    out["key delete --json"].append(
        cli.json("key", "delete", "k4", "--missing-ok", "--yes", "--json")
    )
    # To a file keystore and back, the passphrase from a variable (never argv).
    filed = Cli(
        dict(
            cli.env,
            S3VAULT_KEYSTORE_PATH=str(root / "keystore"),
            S3VAULT_KEYSTORE_PASSPHRASE_ENV="JSON_TEST_PASSPHRASE",
            JSON_TEST_PASSPHRASE=uuid.uuid4().hex,
        ),
        cli.config,
        cli.cwd,
    )
    out["key migrate --json"].append(
        filed.json("key", "migrate", "--to", "file", "--keep", "--json")
    )


def service_outputs(cli: Cli, out: defaultdict[str, list[Any]]) -> None:
    """`service install/status/uninstall` into the Cli's own XDG_CONFIG_HOME (this machine
    has no systemd user manager: nothing is started)."""
    out["service install --json"].append(cli.json("service", "install", "--no-start", "--json"))
    out["service status --json"].append(cli.json("service", "status", "--json"))
    out["service uninstall --json"].append(cli.json("service", "uninstall", "--json"))


# ---- the tests ----------------------------------------------------------------------

CHECKED = sorted(SECTIONS)


@pytest.mark.parametrize("title", CHECKED)
def test_json_output_has_exactly_the_documented_fields(outputs: dict[str, Any], title: str):
    section = SECTIONS[title]
    assert outputs[title], f"no command of the set-up printed {title}"
    documented = set(section.fields)
    for value in outputs[title]:
        actual = paths_of(value, documented)
        assert actual <= documented, f"{title}: undocumented fields {sorted(actual - documented)}"
        missing = expected_present(section, value) - actual
        assert not missing, f"{title}: documented as always there, missing {sorted(missing)}"


def test_status_flat_is_an_object_of_strings_with_the_same_keys_running_or_not(outputs):
    (running,) = outputs["status --json --flat"]
    (stopped,) = outputs["status --json --flat (agent not running)"]
    assert running.keys() == stopped.keys()
    for flat in (running, stopped):
        assert all(isinstance(v, str) for v in flat.values()), flat
    assert (running["state"], running["running"]) == ("idle", "true")
    assert (stopped["state"], stopped["running"]) == ("not-running", "false")
    assert outputs["status --json (agent not running)"][0]["state"] == "not-running"


def test_an_error_with_json_is_an_error_object_on_stdout(outputs):
    for printed in outputs["errors"]:
        error = printed["error"]
        assert error["exit_code"] == 3 and error["type"] == "Not found"
        assert "does not exist" in error["message"]


def _json_commands() -> set[str]:
    """ "put", "config show", ...: every command of the CLI with a --json option."""
    from s3vault.cli.main import cli

    found: set[str] = set()

    def walk(command: click.Command, path: str) -> None:
        if isinstance(command, click.Group):
            ctx = click.Context(command)
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                assert sub is not None
                walk(sub, f"{path} {name}".strip())
        elif any("--json" in p.opts for p in command.params if isinstance(p, click.Option)):
            found.add(path)

    walk(cli, "")
    return found


def test_every_command_with_json_has_a_doc_section_and_every_section_a_command():
    documented = {s.command for s in SECTIONS.values() if s.command}
    assert _json_commands() == documented

"""`s3vault demo`: the whole product on this machine, with nothing to configure.

It starts an embedded S3 endpoint (SeaweedFS) on loopback, makes demo keys in the
OS keyring (or, on a machine without one, in a private keyring started for the
demo), encrypts a demo folder into a bucket, shows what the bucket holds (only
ciphertext and envelopes), and decrypts everything back, verified.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import click
import platformdirs
import yaml
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from s3vault.cli.object_commands import envelope_table, listing_table
from s3vault.cli.output import (
    console,
    human_size,
    print_lines,
    print_prose,
    print_table,
    styled,
)
from s3vault.cli.progress import transfer_progress
from s3vault.config.model import Config, DefaultsSettings, KeyringSettings, S3Settings
from s3vault.config.sync import FolderSettings
from s3vault.crypto.envelope import Location, Version
from s3vault.errors import UsageError
from s3vault.keys.material import GenerateType, generate_key
from s3vault.keys.store import KeyStore
from s3vault.sync.engine import SyncEngine, SyncReport
from s3vault.sync.restore import restore as restore_folder
from s3vault.sync.scan import hash_file
from s3vault.sync.state import StateDB
from s3vault.vault.factory import build_vault
from s3vault.vault.vault import Vault

if TYPE_CHECKING:
    from s3vault.embedded.keyring_session import PrivateKeyring
    from s3vault.embedded.seaweed import LocalS3

DEMO_BUCKET = "s3vault-demo"
DEMO_KEYRING_SERVICE = "s3vault-demo"
STATE_NAME = "state.db"
KEYS_FILE = "keys.json"
"""Fingerprints (not secrets) of the keys that wrote the demo's S3 data."""


@dataclass(frozen=True)
class DemoFile:
    name: str
    key_name: str
    version: Version
    location: Location


DEMO_FILES = (
    DemoFile("notes.md", "demo-aes", Version.V3, Location.METADATA),
    DemoFile("budget-2026.csv", "demo-aes", Version.V2, Location.METADATA),
    DemoFile("passport-scan.bin", "demo-rsa", Version.V3, Location.INSTRUCTION_FILE),
    DemoFile("holiday-video.bin", "demo-aes", Version.V3, Location.METADATA),
)


def _write_demo_folder(folder: Path) -> None:
    """A small folder of the kinds of files people keep (made once, then reused)."""
    folder.mkdir(parents=True, exist_ok=True)
    samples = {
        "notes.md": "# Notes\n\nThe wifi password is *not* in this file. Plaintext never "
        "leaves this machine.\n",
        "budget-2026.csv": "month,rent,food\njan,1200,310\nfeb,1200,295\n",
    }
    for name, text in samples.items():
        path = folder / name
        if not path.exists():
            path.write_text(text, encoding="utf-8")
    blobs = {"passport-scan.bin": 300 * 1024, "holiday-video.bin": 24 * 1024 * 1024}
    for name, size in blobs.items():
        path = folder / name
        if not path.exists() or path.stat().st_size != size:
            path.write_bytes(os.urandom(size))


def _ensure_keys(store: KeyStore) -> dict[str, str]:
    """The demo's master keys, made if missing: name -> fingerprint."""
    existing = set(store.names())
    demo_keys: tuple[tuple[str, GenerateType], ...] = (
        ("demo-aes", "aes256"),
        ("demo-rsa", "rsa2048"),
    )
    fingerprints: dict[str, str] = {}
    for name, kind in demo_keys:
        if name not in existing:
            made = generate_key(name, kind)
            store.put(made)
            fingerprints[name] = made.fingerprint
            done = f" ({kind}) in the keyring"
            console.print(styled("  created master key ", (name, "bold"), done))
        else:
            fingerprints[name] = store.get(name).fingerprint
            console.print(styled("  master key ", (name, "bold"), " already in the keyring"))
    return fingerprints


def _forget_data_of_lost_keys(base: Path, fingerprints: dict[str, str]) -> None:
    """Start the demo's bucket and sync state afresh when the keys that wrote them are gone.

    With no OS keyring the demo keys live in a private keyring that ends with the
    demo, but its S3 data and sync state stay in ``base``: a later run would find
    objects nothing can open. `KEYS_FILE` records which keys (by fingerprint) wrote
    the data; other keys now mean the data is unreadable demo data, so it goes.
    """
    keys_file = base / KEYS_FILE
    try:
        recorded = json.loads(keys_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        recorded = None
    leftovers = [p for p in (base / "s3", *_state_files(base)) if p.exists()]
    if leftovers and recorded != fingerprints:
        print_prose(
            "  the demo's earlier objects were encrypted with keys that no longer exist "
            "(they lived in the keyring of an earlier run): starting with an empty demo bucket"
        )
        shutil.rmtree(base / "s3", ignore_errors=True)
        for path in _state_files(base):
            path.unlink(missing_ok=True)
    base.mkdir(parents=True, exist_ok=True)
    keys_file.write_text(json.dumps(fingerprints, indent=2) + "\n", encoding="utf-8")


def _state_files(base: Path) -> list[Path]:
    state = base / STATE_NAME
    return [state, state.with_name(state.name + "-wal"), state.with_name(state.name + "-shm")]


@contextmanager
def _ended_by_hangup_or_term() -> Iterator[None]:
    """SIGTERM and SIGHUP (a closed terminal) end the demo as Ctrl-C does.

    The default action would end Python on the spot, leaving the SeaweedFS and
    keyring processes the demo started running; as KeyboardInterrupt, the `with`
    blocks that started them stop them.
    """

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    saved = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


@click.command(
    epilog="""\b
Examples:
  s3vault demo
  s3vault demo --serve      # keep the local S3 endpoint running, to use it from another terminal

\b
The demo keeps its S3 data, sync state and folder in ~/.local/share/s3vault/demo
(or --data-dir), and its keys in your OS keyring under the service "s3vault-demo".
With no keyring service it starts a private one whose keys end with the demo; the
next run then starts the demo bucket afresh."""
)
@click.option(
    "--serve",
    is_flag=True,
    help="Keep the embedded S3 endpoint (and a private keyring) running after the demo, "
    "until Ctrl-C, and write the settings another terminal needs to use it.",
)
@click.option(
    "--gui",
    is_flag=True,
    help="Then open the desktop app on the embedded S3, with the demo folder kept in sync "
    "by the demo's own agent, until the app quits (`make demo` does this on a display).",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the demo keeps its S3 data and folder (default: the user data dir).",
)
def demo(serve: bool, gui: bool, data_dir: Path | None) -> int:
    """Run s3vault end to end on an embedded local S3 endpoint."""
    # Imported here, not at the top: the embedded services are the demo's alone, and
    # their S3 binary comes with the optional extra `demo`.
    from s3vault.embedded.keyring_session import PrivateKeyring, keyring_available
    from s3vault.embedded.seaweed import LocalS3, find_weed

    find_weed()  # without the extra: a clear error and its hint, before anything starts
    if serve and gui:
        raise UsageError("--serve and --gui do not go together", hint="Choose one.")
    if gui:
        from s3vault.cli.demo_gui import require_gui

        require_gui()
    base = (data_dir or Path(platformdirs.user_data_dir("s3vault")) / "demo").absolute()
    folder = base / "folder"
    with _ended_by_hangup_or_term(), ExitStack() as stack:
        console.rule(styled(("s3vault demo", "bold")))
        private: PrivateKeyring | None = None
        if keyring_available():
            console.print("Keyring: using your OS keyring (Secret Service).")
        else:
            private = stack.enter_context(PrivateKeyring())
            private.apply_to_environ()
            print_prose(
                styled(
                    "Keyring: ",
                    ("no keyring service is running here", "yellow"),
                    ", so the demo started a private, unlocked gnome-keyring for itself. "
                    "Its keys vanish when the demo ends; for real use, run s3vault in a "
                    "desktop session or use AWS KMS keys.",
                )
            )
        store = KeyStore(service=DEMO_KEYRING_SERVICE)

        console.rule("1. Master keys")
        fingerprints = _ensure_keys(store)
        _forget_data_of_lost_keys(base, fingerprints)

        started = time.monotonic()
        s3 = stack.enter_context(LocalS3(base / "s3"))
        print_prose(
            f"S3: embedded SeaweedFS at {s3.endpoint_url} "
            f"(ready in {time.monotonic() - started:.1f} s, data in {base / 's3'})"
        )
        for variable in LocalS3.CONFLICTING_ENV:
            os.environ.pop(variable, None)
        os.environ.update(s3.env())
        s3.create_bucket(DEMO_BUCKET)
        config = _demo_config(s3.endpoint_url, s3.region)
        vault = build_vault(config, keystore_factory=lambda: store)

        console.rule("2. Encrypt the demo folder into S3")
        _write_demo_folder(folder)
        console.print(f"into s3://{DEMO_BUCKET}/demo/, each under its own data key:")
        table = Table(box=None, pad_edge=False)
        table.add_column("object key", overflow="fold")
        table.add_column("size", justify="right", no_wrap=True)
        for column in ("format", "wrap", "envelope"):
            table.add_column(column, no_wrap=True)
        for item in DEMO_FILES:
            path = folder / item.name
            with transfer_progress(f"encrypting {item.name}", path.stat().st_size) as bar:
                result = vault.put(
                    path,
                    DEMO_BUCKET,
                    f"demo/{item.name}",
                    key_name=item.key_name,
                    version=item.version,
                    location=item.location,
                    progress=bar.advance,
                )
            table.add_row(
                result.key,
                human_size(result.plaintext_size),
                result.format,
                result.wrap_algorithm,
                result.location,
            )
        print_table(table)

        console.rule("3. What the bucket holds")
        listing = vault.list(DEMO_BUCKET, "demo/", recursive=True)
        print_table(listing_table(listing, modified=False))
        raw = s3.client().get_object(Bucket=DEMO_BUCKET, Key="demo/notes.md")["Body"].read()
        console.print()
        console.print(f"The stored bytes of demo/notes.md are ciphertext: {raw[:24].hex()}…")

        console.rule("4. One envelope, every field decoded")
        info = vault.inspect(DEMO_BUCKET, "demo/passport-scan.bin")
        console.print(Panel(envelope_table(info), title=Text(info.url), expand=False))

        console.rule("5. Decrypt everything back (authenticated before release)")
        with tempfile.TemporaryDirectory(prefix="s3vault-demo-") as out:
            for item in DEMO_FILES:
                target = Path(out) / item.name
                vault.get(DEMO_BUCKET, f"demo/{item.name}", target)
                same = hash_file(target) == hash_file(folder / item.name)
                console.print(styled(f"  {item.name:<20} ", _verdict(same, "identical")))
                if not same:
                    raise click.ClickException(f"round trip of {item.name} failed")

        console.rule("6. Keep the folder in sync (what `s3vault agent` does on every change)")
        _demo_sync(vault, folder, base / STATE_NAME)

        console.rule("Done")
        if gui:
            return _open_gui(s3, private, base, _sync_folder(folder))
        if serve:
            _serve(s3, private, base)
        else:
            _next_steps()
    return 0


def _demo_config(endpoint_url: str, region: str) -> Config:
    return Config(
        s3=S3Settings(endpoint_url=endpoint_url, region=region, addressing_style="path"),
        keyring=KeyringSettings(service=DEMO_KEYRING_SERVICE),
        defaults=DefaultsSettings(key="demo-aes"),
    )


def _sync_folder(folder: Path) -> FolderSettings:
    return FolderSettings(
        path=folder, bucket=DEMO_BUCKET, prefix="synced", key="demo-aes", delete="mirror"
    )


def _open_gui(
    s3: LocalS3, private: PrivateKeyring | None, base: Path, folder: FolderSettings
) -> int:
    """The desktop app on the demo, until it quits (s3vault/cli/demo_gui.py)."""
    from s3vault.cli.demo_gui import config_with_folder, run_gui_demo
    from s3vault.embedded.seaweed import write_private

    config_file = base / "config.yaml"
    config = _demo_config(s3.endpoint_url, s3.region)
    write_private(config_file, config_with_folder(config, folder))
    env = {**s3.env(), **(private.env() if private is not None else {})}
    return run_gui_demo(base, config_file, folder, env)


def _verdict(good: bool, word: str) -> tuple[str, str]:
    return (word, "green") if good else ("DIFFERENT", "red")


def _demo_sync(vault: Vault, folder: Path, state_path: Path) -> None:
    """Sync the demo folder, change it as a user would, sync again, restore it."""
    settings = _sync_folder(folder)
    with StateDB(state_path) as state:
        engine = SyncEngine(settings, vault, state)
        report = engine.reconcile()
        console.print(f"  first run:  {_summary(report)}")
        journal = folder / "journal"
        journal.mkdir(exist_ok=True)
        entry = journal / f"{time.strftime('%Y-%m-%d-%H%M%S')}.md"
        entry.write_text("A new entry: only this file is uploaded.\n", encoding="utf-8")
        report = engine.reconcile()
        console.print(f"  after adding {entry.relative_to(folder)}: {_summary(report)}")
        moved = journal / "archive" / entry.name
        moved.parent.mkdir(exist_ok=True)
        entry.rename(moved)
        report = engine.reconcile()
        console.print(
            f"  after moving it to {moved.relative_to(folder)}: {_summary(report)} "
            "(a server-side copy, no re-upload)"
        )
    with tempfile.TemporaryDirectory(prefix="s3vault-demo-restore-") as out:
        restored = restore_folder(vault, DEMO_BUCKET, settings.prefix, Path(out))
        for error in restored.errors:
            console.print(styled("  ", ("error:", "red"), f" {error.path}: {error.message}"))
        same = not restored.errors and _same_tree(folder, Path(out))
        console.print(
            styled(
                f"  restore of s3://{DEMO_BUCKET}/synced/: {restored.restored} files, ",
                _verdict(same, "identical to the folder"),
            )
        )
        if not same:
            raise click.ClickException("the restored folder differs from the demo folder")


def _same_tree(folder: Path, restored: Path) -> bool:
    """Whether ``restored`` holds every file of ``folder`` with the same content."""
    for path in folder.rglob("*"):
        if not path.is_file():
            continue
        copy = restored / path.relative_to(folder)
        if not copy.is_file() or hash_file(copy) != hash_file(path):
            return False
    return True


def _summary(report: SyncReport) -> str:
    return (
        f"{report.uploaded} uploaded, {report.copied} renamed, {report.deleted} deleted "
        f"in {report.duration:.1f} s"
    )


def _next_steps() -> None:
    command = _command()
    print_lines(
        f"""Next steps:
  Keep the demo running and use it from another terminal:
    {command} demo --serve
  Or use s3vault with your own bucket (README, "User guide"):
    {command} key generate my-key
    {command} put FILE s3://YOUR-BUCKET/
    {command} sync ~/Documents s3://YOUR-BUCKET/documents"""
    )


def _command() -> str:
    """How a shell runs this s3vault: `s3vault` when that is it on PATH, else its path
    (`make demo` runs .venv/bin/s3vault, which a new user's PATH does not have)."""
    script = Path(sys.argv[0])
    if script.name == "s3vault" and script.exists():
        on_path = shutil.which("s3vault")
        if on_path and Path(on_path).resolve() == script.resolve():
            return "s3vault"
        return shlex.quote(str(script.absolute()))
    return f"{shlex.quote(sys.executable)} -m s3vault"


def _serve(s3: LocalS3, private: PrivateKeyring | None, base: Path) -> None:
    """Keep the endpoint (and the private keyring) up until Ctrl-C, SIGTERM or SIGHUP.

    What another terminal needs goes into two private files, not on screen: a config
    file (endpoint, keyring service, default key) and a shell file to source with the
    credentials and, for a private keyring, its bus address.
    """
    from s3vault.embedded.seaweed import write_private

    config_file = base / "config.yaml"
    data = _demo_config(s3.endpoint_url, s3.region).model_dump(mode="json", exclude_defaults=True)
    write_private(config_file, yaml.safe_dump(data, sort_keys=False))
    variables = {**s3.env(), "S3VAULT_CONFIG": str(config_file)}
    if private is not None:
        variables.update(private.env())
    command, extra = _command(), []
    venv_bin = Path(sys.executable).parent
    if command != "s3vault" and (venv_bin / "s3vault").exists():
        # This s3vault's bin/ (the venv of `make demo`) first: `s3vault` then works there.
        extra.append(f'export PATH={shlex.quote(str(venv_bin))}:"$PATH"')
        command = "s3vault"
    env_file = base / "demo.env"
    lines = [
        "# Source this file (. demo.env) to use the running `s3vault demo --serve`.",
        # A profile or CA bundle meant for real AWS would redirect or break requests.
        f"unset {' '.join(s3.CONFLICTING_ENV)}",
        *(f"export {name}={shlex.quote(value)}" for name, value in variables.items()),
        *extra,
    ]
    write_private(env_file, "\n".join(lines) + "\n")
    keyring_note = " and so does the demo's private keyring" if private is not None else ""
    print_lines(
        f"""The embedded S3 endpoint keeps running{keyring_note}. In another terminal:

  . {shlex.quote(str(env_file))}     # its address, credentials and keyring (mode 0600)
  {command} ls s3://{DEMO_BUCKET}/demo/
  {command} get s3://{DEMO_BUCKET}/demo/notes.md -
  {command} put FILE s3://{DEMO_BUCKET}/mine/

Serving {s3.endpoint_url}; press Ctrl-C to stop."""
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        # After SIGHUP the terminal may be gone: nothing to tell, just stop.
        with contextlib.suppress(OSError):
            console.print("stopping")
    finally:
        env_file.unlink(missing_ok=True)

"""`s3vault demo`: the whole product on this machine, with nothing to configure.

It starts an embedded S3 endpoint (SeaweedFS) on loopback, makes demo keys in the
OS keyring (or, on a machine without one, in a private keyring started for the
demo), encrypts a demo folder into a bucket, shows what the bucket holds (only
ciphertext and envelopes), and decrypts everything back, verified.
"""

from __future__ import annotations

import os
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import click
import platformdirs
from rich.panel import Panel

from s3vault.cli.object_commands import envelope_table, human_size, listing_table
from s3vault.cli.output import console
from s3vault.cli.progress import transfer_progress
from s3vault.config.model import Config, KeyringSettings, S3Settings
from s3vault.config.sync import FolderSettings
from s3vault.crypto.envelope import Location, Version
from s3vault.keys.material import GenerateType, generate_key
from s3vault.keys.store import KeyStore
from s3vault.sync.engine import SyncEngine, SyncReport
from s3vault.sync.restore import restore as restore_folder
from s3vault.sync.scan import hash_file
from s3vault.sync.state import StateDB
from s3vault.vault.factory import build_vault
from s3vault.vault.vault import Vault

DEMO_BUCKET = "s3vault-demo"
DEMO_KEYRING_SERVICE = "s3vault-demo"


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


def _ensure_keys(store: KeyStore) -> None:
    existing = set(store.names())
    demo_keys: tuple[tuple[str, GenerateType], ...] = (
        ("demo-aes", "aes256"),
        ("demo-rsa", "rsa2048"),
    )
    for name, kind in demo_keys:
        if name not in existing:
            store.put(generate_key(name, kind))
            console.print(f"  created master key [bold]{name}[/] ({kind}) in the keyring")
        else:
            console.print(f"  master key [bold]{name}[/] already in the keyring")


@click.command(
    epilog="""\b
Examples:
  s3vault demo
  s3vault demo --serve      # keep the local S3 endpoint running afterwards"""
)
@click.option(
    "--serve",
    is_flag=True,
    help="Keep the embedded S3 endpoint running after the demo, until Ctrl-C.",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the demo keeps its S3 data and folder (default: the user data dir).",
)
def demo(serve: bool, data_dir: Path | None) -> None:
    """Run s3vault end to end on an embedded local S3 endpoint."""
    from s3vault.local.keyring_session import PrivateKeyring, keyring_available
    from s3vault.local.seaweed import LocalS3

    base = data_dir or Path(platformdirs.user_data_dir("s3vault")) / "demo"
    folder = base / "folder"
    with ExitStack() as stack:
        console.rule("[bold]s3vault demo")
        if keyring_available():
            console.print("Keyring: using your OS keyring (Secret Service).")
        else:
            stack.enter_context(PrivateKeyring()).apply_to_environ()
            console.print(
                "Keyring: [yellow]no keyring service is running here[/], so the demo started "
                "a private, unlocked gnome-keyring for itself. Its keys vanish when the demo "
                "ends; for real use, run s3vault in a desktop session or use AWS KMS keys."
            )
        started = time.monotonic()
        s3 = stack.enter_context(LocalS3(base / "s3"))
        console.print(
            f"S3: embedded SeaweedFS at {s3.endpoint_url} "
            f"(ready in {time.monotonic() - started:.1f} s, data in {base / 's3'})"
        )
        os.environ.update(s3.env())
        for variable in ("AWS_CA_BUNDLE", "AWS_PROFILE"):
            os.environ.pop(variable, None)
        s3.create_bucket(DEMO_BUCKET)
        config = Config(
            s3=S3Settings(endpoint_url=s3.endpoint_url, region=s3.region, addressing_style="path"),
            keyring=KeyringSettings(service=DEMO_KEYRING_SERVICE),
        )
        store = KeyStore(service=DEMO_KEYRING_SERVICE)
        vault = build_vault(config, keystore_factory=lambda: store)

        console.rule("1. Master keys")
        _ensure_keys(store)

        console.rule("2. Encrypt the demo folder into S3")
        _write_demo_folder(folder)
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
            console.print(
                f"  {item.name:<20} → {result.url}  {human_size(result.plaintext_size):>9}  "
                f"{result.format}  {result.wrap_algorithm:<14} envelope in {result.location}"
            )

        console.rule("3. What the bucket holds")
        console.print(listing_table(vault.list(DEMO_BUCKET, "demo/", recursive=True)))
        raw = s3.client().get_object(Bucket=DEMO_BUCKET, Key="demo/notes.md")["Body"].read()
        console.print(
            f"\nThe stored bytes of demo/notes.md are ciphertext: {raw[:24].hex()}…",
            highlight=False,
        )

        console.rule("4. One envelope, every field decoded")
        info = vault.inspect(DEMO_BUCKET, "demo/passport-scan.bin")
        console.print(Panel(envelope_table(info), title=info.url, expand=False))

        console.rule("5. Decrypt everything back (authenticated before release)")
        with tempfile.TemporaryDirectory(prefix="s3vault-demo-") as out:
            for item in DEMO_FILES:
                target = Path(out) / item.name
                vault.get(DEMO_BUCKET, f"demo/{item.name}", target)
                same = hash_file(target) == hash_file(folder / item.name)
                mark = "[green]identical[/]" if same else "[red]DIFFERENT[/]"
                console.print(f"  {item.name:<20} {mark}")
                if not same:
                    raise click.ClickException(f"round trip of {item.name} failed")

        console.rule("6. Keep the folder in sync (what `s3vault agent` does on every change)")
        _demo_sync(vault, folder, base / "state.db")

        console.rule("Done")
        if serve:
            _serve(s3.env(), s3.endpoint_url, base / "demo.env")


def _demo_sync(vault: Vault, folder: Path, state_path: Path) -> None:
    """Sync the demo folder, change it as a user would, sync again, restore it."""
    settings = FolderSettings(
        path=folder, bucket=DEMO_BUCKET, prefix="synced", key="demo-aes", delete="mirror"
    )
    with StateDB(state_path) as state:
        engine = SyncEngine(settings, vault, state)
        report = engine.reconcile()
        console.print(f"  first run:  {_summary(report)}", highlight=False)
        journal = folder / "journal"
        journal.mkdir(exist_ok=True)
        entry = journal / f"{time.strftime('%Y-%m-%d-%H%M%S')}.md"
        entry.write_text("A new entry: only this file is uploaded.\n", encoding="utf-8")
        report = engine.reconcile()
        console.print(
            f"  after adding {entry.relative_to(folder)}: {_summary(report)}", highlight=False
        )
        moved = journal / "archive" / entry.name
        moved.parent.mkdir(exist_ok=True)
        entry.rename(moved)
        report = engine.reconcile()
        console.print(
            f"  after moving it to {moved.relative_to(folder)}: {_summary(report)} "
            "(a server-side copy, no re-upload)",
            highlight=False,
        )
    with tempfile.TemporaryDirectory(prefix="s3vault-demo-restore-") as out:
        restored = restore_folder(vault, DEMO_BUCKET, settings.prefix, Path(out))
        same = all(
            hash_file(Path(out) / rel) == hash_file(folder / rel)
            for rel in (p.relative_to(folder) for p in folder.rglob("*") if p.is_file())
        )
        mark = "[green]identical to the folder[/]" if same else "[red]DIFFERENT[/]"
        console.print(f"  restore of s3://{DEMO_BUCKET}/synced/: {restored.restored} files, {mark}")
        if not same or restored.errors:
            raise click.ClickException("the restored folder differs from the demo folder")


def _summary(report: SyncReport) -> str:
    return (
        f"{report.uploaded} uploaded, {report.copied} renamed, {report.deleted} deleted "
        f"in {report.duration:.1f} s"
    )


def _serve(env: dict[str, str], endpoint: str, env_file: Path) -> None:
    """Keep the endpoint up; hand its settings over in a private file, not on screen."""
    lines = [f"{name}={value}" for name, value in env.items()]
    lines.append(f"S3VAULT_KEYRING_SERVICE={DEMO_KEYRING_SERVICE}")
    fd = os.open(env_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    console.print(
        "The embedded S3 endpoint keeps running. In another terminal:\n\n"
        f"  set -a; . {env_file}; set +a     # its address and keys (file mode 0600)\n"
        f"  s3vault ls s3://{DEMO_BUCKET}/demo/ --recursive\n"
        f"  s3vault inspect s3://{DEMO_BUCKET}/demo/notes.md\n\n"
        f"Serving {endpoint}; press Ctrl-C to stop.",
        highlight=False,
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        console.print("stopping")

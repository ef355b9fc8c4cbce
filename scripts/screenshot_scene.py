"""The scene scripts/screenshots.py photographs: keys, a bucket of realistic objects,
a synced folder and a config file, all inside one temporary base directory.

Everything goes through the product's own code (KeyStore, the vault), so what the
screenshots show is what a user would see after a few weeks of use.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from s3vault.config.model import Config, DefaultsSettings, KeyringSettings, S3Settings
from s3vault.config.sync import FolderSettings
from s3vault.crypto.envelope import Location, Version
from s3vault.keys.material import generate_key
from s3vault.keys.store import KeyStore
from s3vault.vault.factory import build_vault

BUCKET = "family-vault"
SERVICE = "s3vault-shots"
CURRENT_KEY = "laptop-2026"
ARCHIVE_KEY = "archive-2025"
SYNC_PREFIX = "laptop/documents"
KiB = 1024
MiB = 1024 * KiB


@dataclass(frozen=True)
class Item:
    key: str
    size: int
    master: str = CURRENT_KEY
    version: Version = Version.V3
    location: Location = Location.METADATA


# A bucket as a household keeps it: documents in every envelope flavour (V3, V2 from an
# older client, instruction files under the archive key), photos, a backup.
ITEMS = (
    Item("documents/tax-return-2025.pdf", 412 * KiB),
    Item("documents/lease-agreement.pdf", 1_830 * KiB, version=Version.V2),
    Item(
        "documents/passport-scan.jpg", 2_240 * KiB, ARCHIVE_KEY, location=Location.INSTRUCTION_FILE
    ),
    Item("documents/insurance-policy.pdf", 688 * KiB, ARCHIVE_KEY),
    Item("documents/medical/vaccination-record.pdf", 96 * KiB),
    Item("documents/medical/blood-test-2026-01.pdf", 154 * KiB, version=Version.V2),
    Item("documents/wifi-and-router.txt", 812),
    Item("documents/recovery-codes.txt", 1_204, ARCHIVE_KEY, location=Location.INSTRUCTION_FILE),
    Item("photos/2025/summer/lake-sunset.jpg", 3_412 * KiB),
    Item("photos/2025/summer/kayak.jpg", 2_876 * KiB),
    Item("photos/2025/birthday-cake.heic", 1_544 * KiB, ARCHIVE_KEY),
    Item("photos/2026/first-snow.jpg", 4_105 * KiB),
    Item("backups/phone-contacts.vcf", 38 * KiB),
    Item("backups/password-manager.kdbx", 211 * KiB, location=Location.INSTRUCTION_FILE),
)

# The synced folder: ~20 files of the kinds people keep in ~/Documents.
FOLDER_FILES = {
    "notes/todo.md": "- renew passport\n- call the bank\n",
    "notes/meeting-2026-03-02.md": "# Budget meeting\n\nAgreed: new roof in May.\n",
    "notes/recipes/bread.md": "500 g flour, 350 g water, 10 g salt, 2 g yeast\n",
    "notes/recipes/curry.md": "Onions, garlic, ginger, tomatoes, coconut milk.\n",
    "finance/budget-2026.csv": "month,rent,food\njan,1200,310\nfeb,1200,295\n",
    "finance/invoices/2026-01-electricity.pdf": 84 * KiB,
    "finance/invoices/2026-02-electricity.pdf": 86 * KiB,
    "finance/invoices/2026-01-internet.pdf": 41 * KiB,
    "finance/payslips/2026-01.pdf": 122 * KiB,
    "finance/payslips/2026-02.pdf": 124 * KiB,
    "home/floor-plan.png": 730 * KiB,
    "home/warranty-dishwasher.pdf": 310 * KiB,
    "home/insurance-claim.odt": 58 * KiB,
    "school/report-card-2025.pdf": 260 * KiB,
    "school/timetable.ods": 19 * KiB,
    "cv/cv-2026.odt": 47 * KiB,
    "cv/cover-letter.odt": 22 * KiB,
    "travel/itinerary-lisbon.pdf": 96 * KiB,
    "travel/boarding-pass.pdf": 71 * KiB,
    "travel/packing-list.md": "passport, chargers, sunscreen\n",
}


def make_keys(service: str = SERVICE) -> KeyStore:
    """The two master keys: an AES-256 current key and an older RSA archive key."""
    store = KeyStore(service=service)
    store.put(generate_key(ARCHIVE_KEY, "rsa2048"))
    store.put(generate_key(CURRENT_KEY, "aes256"))
    store.set_current(CURRENT_KEY)
    return store


def write_folder(folder: Path) -> None:
    for name, content in FOLDER_FILES.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            path.write_text(content, encoding="utf-8")
        else:
            path.write_bytes(os.urandom(content))


def config_for(endpoint_url: str, region: str, folder: Path) -> Config:
    return Config(
        s3=S3Settings(endpoint_url=endpoint_url, region=region, addressing_style="path"),
        keyring=KeyringSettings(service=SERVICE),
        defaults=DefaultsSettings(key=CURRENT_KEY),
        buckets=[BUCKET],
        folders=[
            FolderSettings(
                path=folder, bucket=BUCKET, prefix=SYNC_PREFIX, key=CURRENT_KEY, delete="mirror"
            )
        ],
    )


def write_config(path: Path, config: Config) -> None:
    data = config.model_dump(mode="json", exclude_defaults=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    path.chmod(0o600)


def fill_bucket(config: Config, store: KeyStore, scratch: Path) -> None:
    """Encrypt ``ITEMS`` into the bucket (random content of the given sizes)."""
    vault = build_vault(config, keystore_factory=lambda: store)
    scratch.mkdir(parents=True, exist_ok=True)
    for item in ITEMS:
        local = scratch / "plain.bin"
        local.write_bytes(os.urandom(item.size))
        vault.put(
            local,
            BUCKET,
            item.key,
            key_name=item.master,
            version=item.version,
            location=item.location,
        )
        local.unlink()


def upload_samples(scratch: Path) -> list[Path]:
    """Files to drop on the browser (the upload window's rows)."""
    scratch.mkdir(parents=True, exist_ok=True)
    sizes = {"scan-2026-03-14.pdf": 3 * MiB, "holiday-video.mp4": 48 * MiB, "notes.txt": 2 * KiB}
    paths = []
    for name, size in sizes.items():
        path = scratch / name
        path.write_bytes(os.urandom(size))
        paths.append(path)
    return paths

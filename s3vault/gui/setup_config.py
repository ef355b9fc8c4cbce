"""What the first-start setup writes: the same config file the CLI reads.

Only settings go in: the endpoint, region, profile and addressing style, the keyring
service, the bucket, the default master key and the synced folder. Credentials stay
where AWS tools keep them (environment, ~/.aws, a profile); keys stay in the keyring.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from s3vault.config.model import Config, S3Settings
from s3vault.errors import UsageError
from s3vault.gui.config_file import Document, read_document, set_value, validate, write_document

HEADER = (
    "s3vault config, written by the setup of the desktop app.\n"
    "The CLI, the agent and the app read it; `s3vault config schema` describes it.\n"
    "Credentials are not here: they come from the AWS sources (environment, ~/.aws)."
)


@dataclass(frozen=True, slots=True)
class SetupAnswers:
    s3: S3Settings
    bucket: str
    keyring_service: str
    key: str
    folder: Path | None = None
    prefix: str = ""


def apply_answers(doc: Document, answers: SetupAnswers) -> None:
    """Set the answers in ``doc``, keeping whatever else it already holds."""
    if not doc:
        doc.yaml_set_start_comment(HEADER)
        doc["version"] = 1
    s3 = answers.s3
    for name, value in (
        ("endpoint_url", s3.endpoint_url),
        ("region", s3.region),
        ("profile", s3.profile),
        ("addressing_style", None if s3.addressing_style == "auto" else s3.addressing_style),
    ):
        set_value(doc, ("s3", name), value or None)
    set_value(doc, ("keyring", "service"), answers.keyring_service)
    buckets = list(doc.get("buckets") or [])
    if answers.bucket not in buckets:
        buckets.append(answers.bucket)
    doc["buckets"] = buckets
    set_value(doc, ("defaults", "key"), answers.key)
    if answers.folder is not None:
        folders = list(doc.get("folders") or [])
        entry = {"path": str(answers.folder), "bucket": answers.bucket, "key": answers.key}
        if answers.prefix:
            entry["prefix"] = answers.prefix
        folders.append(entry)
        doc["folders"] = folders


def write_setup_config(path: Path, answers: SetupAnswers) -> Config:
    """Validate and write the config at ``path`` (mode 0600); the Config it now holds.
    Nothing is written when the result is invalid (ConfigError naming the field)."""
    if answers.folder is not None and not answers.folder.is_dir():
        raise UsageError(
            f"{answers.folder} is not a folder",
            hint="Choose an existing folder to keep in sync, or leave it out.",
        )
    doc = read_document(path)
    apply_answers(doc, answers)
    config = validate(doc, path)
    write_document(path, doc)
    return config

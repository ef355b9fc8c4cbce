"""Which objects still need a master key: the guard before a key is deleted, and the
counts the app's key list shows.

An object names its raw (AES or RSA) master key in its envelope's description
(``s3vault-key``), so the places to look are listed and every envelope read. The
places are the config's ``buckets:``, each synced folder's bucket and prefix (under
that folder's instruction suffix) and any the caller adds. KMS-wrapped objects do not
name their key, and objects written by other clients may not either: a key is *known*
to be used, never known to be unused.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from s3vault.config.model import Config
from s3vault.errors import ConflictError
from s3vault.remote.url import parse_s3_url
from s3vault.vault.objects import ObjectInfo
from s3vault.vault.vault import Vault

# How many objects that still need a key are enough to refuse (and to show).
USERS_SHOWN = 5


@dataclass(frozen=True)
class Place:
    """Where objects are looked for: a bucket, a prefix, and the instruction suffix
    their envelopes may be under (None: the vault's own)."""

    bucket: str
    prefix: str = ""
    instruction_suffix: str | None = None

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


@dataclass
class KeyUsers:
    """Objects found naming a key (URLs) and objects whose envelope could not be read
    ("URL: why"), each list at most ``limit`` long; ``complete`` once every place was
    listed to the end (then ``len(found)`` is the count when no limit was given)."""

    found: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    complete: bool = False


def key_places(config: Config, checks: Iterable[str] = ()) -> list[Place]:
    """The places to look for a key's objects: the config's buckets, ``checks``
    (``s3://BUCKET[/PREFIX]`` or ``BUCKET``), and each synced folder's prefix."""
    places = [_place(text) for text in (*config.buckets, *checks)]
    # Each folder's objects keep their instruction files under the folder's suffix.
    places += [Place(f.bucket, _as_prefix(f.prefix), f.instruction_suffix) for f in config.folders]
    return places


def folders_using_key(config: Config, name: str) -> list[str]:
    """The synced folders whose new files are encrypted with key ``name``."""
    return [str(folder.path) for folder in config.folders if folder.key == name]


def envelopes_in(
    vault: Vault, places: Iterable[Place], check: Callable[[], None] | None = None
) -> Iterator[ObjectInfo]:
    """Every object in ``places`` once (places may overlap), with its envelope;
    ``check`` is called between objects (a job's cancellation)."""
    seen: set[str] = set()
    for place in places:
        reader = vault.with_instruction_suffix(place.instruction_suffix)
        for entry in reader.list(place.bucket, place.prefix, recursive=True):
            if check is not None:
                check()
            if isinstance(entry, ObjectInfo) and entry.url not in seen:
                seen.add(entry.url)
                yield entry


def objects_naming_key(
    vault: Vault,
    name: str,
    places: Iterable[Place],
    *,
    limit: int | None = USERS_SHOWN,
    check: Callable[[], None] | None = None,
) -> KeyUsers:
    """Objects whose description names key ``name`` (the listing stops once ``limit``
    are found; None lists everything) and, up to ``limit``, unreadable envelopes."""
    users = KeyUsers()
    for entry in envelopes_in(vault, places, check):
        if entry.key_name == name:
            users.found.append(entry.url)
            if limit is not None and len(users.found) >= limit:
                return users
        elif entry.envelope_error and (limit is None or len(users.unreadable) < limit):
            users.unreadable.append(f"{entry.url}: {entry.envelope_error}")
    users.complete = True
    return users


def count_objects_by_key(
    vault: Vault, places: Iterable[Place], check: Callable[[], None] | None = None
) -> Counter[str]:
    """How many objects in ``places`` name each key (one listing for every key)."""
    counts: Counter[str] = Counter()
    for entry in envelopes_in(vault, places, check):
        key_name = entry.key_name
        if key_name:
            counts[key_name] += 1
    return counts


def refuse_if_key_in_use(
    config: Config,
    vault: Callable[[], Vault],
    name: str,
    places: list[Place],
    *,
    scan: bool,
    limit: int | None = USERS_SHOWN,
    check: Callable[[], None] | None = None,
    force: str | None = "pass --force",
) -> bool:
    """ConflictError while a synced folder uses key ``name`` or, with ``scan``, an
    object in ``places`` names it (or has an envelope that cannot be read, so might).

    ``vault`` is called only when there is somewhere to look. Returns whether any
    place was looked at (False: nothing could be checked; the caller says so).
    ``limit`` None lists every place to the end, so the refusal gives the count.
    ``force`` says in the hints how the caller can delete anyway (None: it cannot).
    """
    anyway = f", or {force}" if force else ""
    folders = folders_using_key(config, name)
    if folders:
        raise ConflictError(
            f"key '{name}' encrypts the new files of synced folder(s) {', '.join(folders)}",
            hint="Give those folders another key in the config first (and rotate their "
            f"objects){anyway}.",
        )
    if not scan:
        return True  # a KMS-wrapped object does not name its key
    if not places:
        return False
    users = objects_naming_key(vault(), name, places, limit=limit, check=check)
    if users.unreadable and not users.found:
        raise ConflictError(
            f"the envelopes of some objects in the checked buckets cannot be read, so "
            f"s3vault cannot tell whether they need key '{name}': "
            f"{'; '.join(users.unreadable[:USERS_SHOWN])}",
            hint="Inspect them (`s3vault inspect URL`; give --instruction-suffix if their "
            f"envelopes are in instruction files under another suffix){anyway}.",
        )
    if users.found:
        shown = ", ".join(users.found[:USERS_SHOWN])
        count = f"{len(users.found)} object(s)" if users.complete else "objects"
        rotate = (
            "Rotate them first (`s3vault rotate s3://BUCKET/ --recursive --from-key "
            f"{name} --to-key NEW`)"
        )
        raise ConflictError(
            f"key '{name}' still wraps the data keys of {count} in the checked buckets, "
            f"e.g. {shown}",
            hint=f"{rotate}, or {force} to delete it anyway: those objects then cannot be "
            "read without a copy of the key."
            if force
            else f"{rotate}, then delete the key.",
        )
    return True


def _as_prefix(prefix: str) -> str:
    return prefix if not prefix or prefix.endswith("/") else prefix + "/"


def _place(text: str) -> Place:
    url = parse_s3_url(text if text.startswith("s3://") else f"s3://{text}")
    return Place(url.bucket, url.key)

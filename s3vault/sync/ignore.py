"""Which paths of a folder are not synced: gitignore patterns, in three layers.

1. `DEFAULT_PATTERNS`: editor swap and lock files, partial downloads, OS litter,
   and s3vault's own restore temp files.
2. The folder's ``ignore`` list in the config.
3. The folder's ``.s3vaultignore`` file (gitignore syntax, one pattern a line).

Later layers win, as lines later in a .gitignore do, so ``!keep.tmp`` in the config
or the file syncs a file the defaults would skip. The ``.s3vaultignore`` file itself
is synced: it is part of the folder, and a restore should bring the rules back.

Matching follows git, via pathspec's `GitIgnoreSpec`: a pattern without ``/`` matches
a name at any depth, a leading ``/`` anchors it to the root, and a trailing ``/``
matches directories only, which the scan then skips whole (it never descends).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from pathspec import GitIgnoreSpec

from s3vault.errors import ConfigError

IGNORE_FILE = ".s3vaultignore"

DEFAULT_PATTERNS: tuple[str, ...] = (
    # Editors: vim swap files, emacs backups, autosaves and lock links.
    "*.swp",
    "*.swo",
    "*~",
    ".#*",
    r"\#*#",  # escaped: an unescaped leading '#' is a comment
    # Office suites: LibreOffice and Microsoft Office lock files.
    ".~lock.*#",
    "~$*",
    # Temporary and half-downloaded files (browsers, download managers).
    "*.tmp",
    "*.part",
    "*.crdownload",
    # What file managers and operating systems leave in every folder.
    ".DS_Store",
    "Thumbs.db",
    "desktop.ini",
    ".Trash-*/",
    "$RECYCLE.BIN/",
    "System Volume Information/",
    # s3vault's own temp files while a restore writes a file (renamed when verified).
    ".*.s3vault-part",
)


class IgnoreRules:
    """Decides whether a path relative to the sync root is left out of sync."""

    def __init__(self, patterns: Iterable[str] = (), *, defaults: bool = True) -> None:
        lines = [*(DEFAULT_PATTERNS if defaults else ()), *patterns]
        self.patterns: tuple[str, ...] = tuple(lines)
        self._spec = GitIgnoreSpec.from_lines(lines)
        self._any = _any_pattern(self._spec)

    @classmethod
    def for_folder(
        cls, root: Path, patterns: Sequence[str] = (), *, defaults: bool = True
    ) -> IgnoreRules:
        """Defaults, then ``patterns`` (the config's), then ``root/.s3vaultignore``.

        An ignore file that exists but cannot be read is an error (ConfigError): going
        on without it would upload what the user asked not to.
        """
        return cls([*patterns, *read_ignore_file(root)], defaults=defaults)

    def is_ignored(self, relpath: str, is_dir: bool = False) -> bool:
        """``relpath`` is POSIX and relative to the root; a directory may end in ``/``."""
        if is_dir and not relpath.endswith("/"):
            relpath += "/"
        quick = self._any
        clean = not relpath.startswith(("/", "./"))  # else pathspec rewrites it first
        if quick is not None and clean and quick.match(relpath) is None:
            return False  # no pattern matches at all: the common case, decided at once
        return self._spec.match_file(relpath)

    def __repr__(self) -> str:
        return f"IgnoreRules({len(self.patterns)} patterns)"


_ANY_DEPTH = "^(?:.+/)?"
"""How pathspec's regex of a pattern without a ``/`` starts: the name at any depth."""


_PLAIN = re.compile("").flags


def _any_pattern(spec: GitIgnoreSpec) -> re.Pattern[str] | None:
    """One regex matching every path that at least one of ``spec``'s patterns matches.

    The scan asks about every file, and pathspec tries each pattern in turn (about 8 µs
    a path with the defaults); most paths match none, which this one regex tells in
    under 1 µs. Only a path it matches goes to pathspec, whose answer (the last
    matching pattern wins, negations included) stands. It is the patterns' own regexes
    as alternatives, their named groups made plain (two groups may not share a name)
    and the common "at any depth" head factored out, which matches the same paths
    (pathspec's own clean-up of a path, a leading ``/`` or ``./``, is left to it).
    None (always ask pathspec) if that cannot be built.
    """
    heads: list[str] = []
    others: list[str] = []
    for pattern in spec.patterns:
        regex = getattr(pattern, "regex", None)
        if pattern.include is None:
            continue  # a blank line or a comment
        if not isinstance(regex, re.Pattern) or regex.flags != _PLAIN or "(?P=" in regex.pattern:
            return None
        source = re.sub(r"\(\?P<[^>]+>", "(?:", regex.pattern)
        if source.startswith(_ANY_DEPTH):
            heads.append(f"(?:{source[len(_ANY_DEPTH) :]})")
        else:
            others.append(f"(?:{source})")
    if heads:
        others.append(f"{_ANY_DEPTH}(?:{'|'.join(heads)})")
    if not others:
        return re.compile("(?!)")  # no pattern: nothing is ignored
    try:
        return re.compile("|".join(others))
    except re.error:
        return None


def read_ignore_file(root: Path) -> list[str]:
    """The lines of ``root/.s3vaultignore``; none when the file does not exist."""
    path = root / IGNORE_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"cannot read {path}: {exc}",
            hint="Fix or remove the file; nothing in this folder is synced until then.",
        ) from None
    return text.splitlines()

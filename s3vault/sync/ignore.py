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
        return self._spec.match_file(relpath)

    def __repr__(self) -> str:
        return f"IgnoreRules({len(self.patterns)} patterns)"


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

"""The recovery kit: a master key as text a person can print, keep and type back.

Pure code (no keyring, no files, no terminal): `encode` turns a key into the kit's
text, `KitReader` reads one back line by line (a terminal prompt feeds it as the user
types, a file or stdin all at once), `decode` is the all-at-once form.

The format, version 1, is ASCII text, one item per line (``\\n``):

1. ``s3vault recovery kit v1``: what this is and its format version.
2. Header lines ``field: value``: ``name`` (the key's name), ``type`` (``aes``,
   ``rsa`` or ``kms``), ``bits`` (AES and RSA), ``fingerprint`` (16 hex digits, the
   one `s3vault key list` shows), ``created`` (ISO 8601, informative). Reading needs
   ``type`` and ``fingerprint`` (and ``bits`` for AES); ``name`` gives the default name.
3. The key:

   - AES: the secret (16, 24 or 32 bytes) in base32 (RFC 4648 alphabet ``A-Z2-7``,
     most significant bit first, no ``=`` padding), padded with ``A`` (zero bits) to a
     multiple of 4 characters, cut into *groups* of 4 data characters plus 1 check
     character, 4 groups per *line*, each line labelled ``N:`` (N from 1). An AES-256
     key is 52 characters: 13 groups on 4 lines; AES-128 7 groups, AES-192 10.
   - RSA: the PKCS#8 PEM private key as `s3vault key export` writes it, verbatim.
   - KMS: one line ``key-id: ID`` (a KMS key id is not a secret).

Lines starting with ``#`` are comments; blank lines are skipped.

The check character of group *g* (0-based over the whole key, g < 32) with data
characters d1..d4 is computed in GF(32) (polynomial x^5 + x^2 + 1, each character its
5-bit value): ``c = g·α^5 + d1·α^4 + d2·α^3 + d3·α^2 + d4·α``, α = x. So the six
symbols (g, d1, d2, d3, d4, c) weighted by the distinct non-zero powers α^5..α^0 sum
to zero, and a group fails its check after any one changed character (the sum moves by
α^i·e ≠ 0), any two of its characters swapped, the check included (it moves by
(α^i + α^j)(a + b) ≠ 0), or a whole group typed at another group's place (it moves by
α^5·(g + h) ≠ 0). Luhn mod 32 would miss swapping the first and last characters of the
alphabet (``A7`` / ``7A``); this check misses none of these. Over the whole key, the
fingerprint in the header is compared with the reassembled key's (an HMAC-SHA-256 for
AES, a hash of the public key for RSA, of the id for KMS), which catches what slips
through group by group and a mistyped fingerprint.

Reading forgives what people do when typing: case, spaces and dashes anywhere in a
line, the ``N:`` labels left out, and the look-alikes ``0``/``O``, ``1``/``I``,
``8``/``B`` (the alphabet has no 0, 1 or 8). A group that does not check is reported as
"line 3, group 2"; no error message ever holds the key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from s3vault.errors import UsageError
from s3vault.keys.material import (
    AES_KEY_BYTES,
    AesKey,
    KeyType,
    KmsKey,
    MasterKey,
    RsaKey,
    parse_rsa,
    validate_kms_key_id,
    validate_name,
)

VERSION = 1
FIRST_LINE = f"s3vault recovery kit v{VERSION}"
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
DATA_CHARS = 4  # per group, plus one check character
GROUPS_PER_LINE = 4
MAX_GROUPS = 32  # a group's place is one GF(32) symbol

_VALUE = {c: i for i, c in enumerate(ALPHABET)}
_LOOK_ALIKES = str.maketrans({"0": "O", "1": "I", "8": "B"})
_SEPARATORS = re.compile(r"[\s\-]+")
_FIRST_LINE_RE = re.compile(r"s3vault\s*recovery\s*kit\s*v(\d+)", re.IGNORECASE)
_PEM_BEGIN = "-----BEGIN PRIVATE KEY-----"
_PEM_END = "-----END PRIVATE KEY-----"
_HEX16 = re.compile(r"[0-9a-f]{16}")
_READ_HINT = (
    "Type the line as printed on the kit: case, spaces and dashes do not matter, "
    "and neither does the 'N:' label."
)

# --- GF(32) ----------------------------------------------------------------------

_EXP = [0] * 62
_LOG = [0] * 32
_x = 1
for _i in range(31):
    _EXP[_i] = _EXP[_i + 31] = _x
    _LOG[_x] = _i
    _x <<= 1
    if _x & 0b100000:
        _x ^= 0b100101  # x^5 + x^2 + 1, primitive: x generates all 31 non-zero elements
del _i, _x


def _mul(a: int, b: int) -> int:
    return 0 if a == 0 or b == 0 else _EXP[_LOG[a] + _LOG[b]]


def check_char(place: int, data: str) -> str:
    """The check character of the group at ``place`` (0-based) holding ``data``."""
    symbols = [place, *(_VALUE[c] for c in data)]
    total = 0
    for power, symbol in zip(range(len(symbols), 0, -1), symbols, strict=True):
        total ^= _mul(_EXP[power], symbol)
    return ALPHABET[total]


# --- writing -----------------------------------------------------------------------


def groups_for(bits: int) -> int:
    """How many groups an AES key of ``bits`` takes."""
    chars = -(-bits // 5)
    return -(-chars // DATA_CHARS)


def lines_for(bits: int) -> int:
    return -(-groups_for(bits) // GROUPS_PER_LINE)


def _base32(secret: bytes) -> str:
    value = int.from_bytes(secret, "big")
    chars = groups_for(len(secret) * 8) * DATA_CHARS
    value <<= chars * 5 - len(secret) * 8  # zero bits up to the last group's end
    return "".join(ALPHABET[(value >> (5 * i)) & 31] for i in range(chars - 1, -1, -1))


def encode(key: MasterKey, *, created: str | None = None) -> str:
    """The recovery kit of ``key`` (the format in the module docstring)."""
    lines = [
        FIRST_LINE,
        f"name: {key.name}",
        f"type: {key.type}",
        *([f"bits: {key.bits}"] if key.bits is not None else []),
        f"fingerprint: {key.fingerprint}",
        f"created: {created or '-'}",
        "",
    ]
    if isinstance(key, AesKey):
        text = _base32(key.secret)
        groups = [
            data + check_char(place, data)
            for place, data in enumerate(
                text[i : i + DATA_CHARS] for i in range(0, len(text), DATA_CHARS)
            )
        ]
        lines += [
            f"# {len(groups)} groups of 5 characters (A-Z, 2-7): the last of each checks it.",
            "# Case, spaces and dashes do not matter; 0/O, 1/I and 8/B read the same.",
        ]
        for n, start in enumerate(range(0, len(groups), GROUPS_PER_LINE), start=1):
            lines.append(f"{n}: {' '.join(groups[start : start + GROUPS_PER_LINE])}")
    elif isinstance(key, RsaKey):
        lines += key.private_pem.decode("ascii").strip().splitlines()
    else:
        lines.append(f"key-id: {key.key_id}")
    lines += [
        "",
        "# Restore: s3vault key import --recovery --file KIT (or type it at the prompt).",
        "# Keep this on paper in a safe or in a password manager, never next to the",
        "# bucket's credentials and not in the same cloud account.",
    ]
    return "\n".join(lines) + "\n"


# --- reading -----------------------------------------------------------------------

_TYPES: tuple[KeyType, ...] = ("aes", "rsa", "kms")
_Stage = Literal["first", "header", "groups", "pem", "done"]


def _normalize_field(text: str) -> str:
    return re.sub(r"[\s_-]+", "-", text.strip().lower())


@dataclass
class KitReader:
    """Reads a kit line by line: `feed` each line, then `key`.

    `feed` raises UsageError for a line that cannot be right (a group that does not
    check, a header that makes no sense) and then keeps its state, so a prompt can ask
    for that line again.
    """

    stage: _Stage = "first"
    header: dict[str, str] = field(default_factory=dict)
    groups: list[str] = field(default_factory=list)  # AES: checked data characters
    pem: list[str] = field(default_factory=list)
    key_id: str | None = None

    # --- what comes next -----------------------------------------------------------

    @property
    def done(self) -> bool:
        return self.stage == "done"

    @property
    def created(self) -> str | None:
        """The header's creation time when it is a valid ISO 8601 one (restored with
        the key, so `key list` shows when it was made, not when it was typed back)."""
        value = self.header.get("created", "")
        try:
            datetime.fromisoformat(value)
        except ValueError:
            return None
        return value

    @property
    def group_line(self) -> int:
        """The number of the next group line (1-based)."""
        return len(self.groups) // GROUPS_PER_LINE + 1

    def prompt(self) -> str:
        """A short label for the line expected next (for a terminal prompt)."""
        if self.stage == "first":
            return f"first line ({FIRST_LINE})"
        if self.stage == "header":
            if self.header.get("type", "").lower() == "aes" and "bits" in self.header:
                return f"header line, or line 1 of {lines_for(self._bits())}"
            return "header line, or the first line of the key"
        if self.stage == "groups":
            return f"line {self.group_line} of {lines_for(self._bits())}"
        if self.stage == "pem":
            return "next line of the PEM"
        return "end"

    # --- feeding ---------------------------------------------------------------------

    def feed(self, line: str) -> None:
        text = line.strip()
        if not text or text.startswith("#"):
            return
        if self.stage == "first":
            self._first(text)
        elif self.stage == "header":
            self._header(text)
        elif self.stage == "groups":
            self._groups(text)
        elif self.stage == "pem":
            self.pem.append(text)
            if text == _PEM_END:
                self.stage = "done"
        else:
            raise UsageError(
                "the kit has more lines after the end of the key",
                hint="Give one kit at a time; comment lines start with '#'.",
            )

    def _first(self, text: str) -> None:
        match = _FIRST_LINE_RE.fullmatch(text)
        if match is None:
            raise UsageError(
                f"this is not an s3vault recovery kit: its first line must be '{FIRST_LINE}'",
                hint="Give the kit that `s3vault key export NAME --recovery` printed.",
            )
        if int(match.group(1)) != VERSION:
            raise UsageError(
                f"this recovery kit is format v{match.group(1)}; this s3vault reads v{VERSION}",
                hint="Read it with the s3vault version that wrote it, or a newer one.",
            )
        self.stage = "header"

    def _header(self, text: str) -> None:
        label, colon, value = text.partition(":")
        name = _normalize_field(label)
        if text == _PEM_BEGIN:
            self._need("rsa", "a PEM private key")
            self.pem = [text]
            self.stage = "pem"
        elif colon and name in ("key-id", "keyid"):
            self._need("kms", "a KMS key id")
            self.key_id = validate_kms_key_id(value.strip())
            self.stage = "done"
        elif colon and name in ("name", "type", "bits", "fingerprint", "created"):
            self.header[name] = value.strip()
        elif colon and not label.strip().isdigit():
            raise UsageError(
                f"unknown header line '{label.strip()[:20]}:' in the recovery kit",
                hint="The header fields are name, type, bits, fingerprint and created.",
            )
        else:
            self._need("aes", "groups of characters")
            self._bits()  # a known AES size before the first group is read
            self.stage = "groups"
            self._groups(text)

    def _need(self, type_: KeyType, what: str) -> None:
        for required in ("type", "fingerprint"):
            if required not in self.header:
                raise UsageError(
                    f"the recovery kit's header has no '{required}:' line before the key",
                    hint="Type the header lines first, as printed on the kit.",
                )
        if self._type() != type_:
            raise UsageError(
                f"the kit's header says type {self._type()}, but the kit holds {what}",
                hint="Check the 'type:' line of the kit.",
            )

    def _groups(self, text: str) -> None:
        number = self.group_line
        label, colon, rest = text.rpartition(":")
        if colon:
            if label.strip() != str(number):
                raise UsageError(
                    f"expected line {number} of the key, got a line labelled '{label.strip()[:8]}'",
                    hint="Type the lines in their order; a line may be missing.",
                )
            text = rest
        total = groups_for(self._bits())
        wanted = min(GROUPS_PER_LINE, total - len(self.groups))
        tokens = [t for t in _SEPARATORS.split(text) if t]
        chars = "".join(tokens).upper().translate(_LOOK_ALIKES)
        size = DATA_CHARS + 1
        if len(chars) != wanted * size:
            # Typed as groups: point at the first group of the wrong size.
            short = next((i for i, t in enumerate(tokens) if len(t) != size), None)
            if any(len(t) > size for t in tokens):
                short = None
            where = f"line {number}, group {short + 1}" if short is not None else f"line {number}"
            raise UsageError(
                f"{where} has {len(tokens[short]) if short is not None else len(chars)} "
                f"characters; line {number} should hold {wanted} "
                f"group{'s' if wanted > 1 else ''} of {size}: retype it",
                hint=_READ_HINT,
            )
        checked = []
        for i in range(wanted):
            group = chars[i * size : (i + 1) * size]
            place = len(self.groups) + i
            if any(c not in _VALUE for c in group) or check_char(place, group[:-1]) != group[-1]:
                raise UsageError(
                    f"line {number}, group {i + 1} does not check: retype it",
                    hint="Each group is 5 characters of A-Z and 2-7; the 5th checks the "
                    "other 4 and the group's place on the kit.",
                )
            checked.append(group[:-1])
        self.groups += checked
        if len(self.groups) == total:
            self.stage = "done"

    # --- the header --------------------------------------------------------------------

    def _type(self) -> KeyType:
        text = self.header.get("type", "").lower()
        for type_ in _TYPES:
            if text == type_:
                return type_
        raise UsageError(
            f"the kit's header has an unknown key type '{text[:10]}'",
            hint="The 'type:' line reads aes, rsa or kms.",
        )

    def _bits(self) -> int:
        try:
            bits = int(self.header.get("bits", ""))
        except ValueError:
            bits = 0
        if bits // 8 not in AES_KEY_BYTES or bits % 8:
            raise UsageError(
                "the kit's header needs a 'bits:' line of 128, 192 or 256 for an AES key",
                hint="Check the 'bits:' line of the kit.",
            )
        return bits

    # --- the result ----------------------------------------------------------------------

    @property
    def name(self) -> str | None:
        """The key's name in the kit, if it has one."""
        return self.header.get("name") or None

    def key(self, name: str | None = None) -> MasterKey:
        """The key read, named ``name`` (default: the kit's name), once its fingerprint
        matches the header's; UsageError if the kit is incomplete or does not match."""
        if not self.done:
            missing = (
                f"line {self.group_line} of {lines_for(self._bits())} of the key is missing"
                if self.stage == "groups"
                else "the key is missing"
            )
            raise UsageError(f"the recovery kit ends early: {missing}", hint=_READ_HINT)
        chosen = name or self.name
        if not chosen:
            raise UsageError(
                "the recovery kit names no key: give a NAME",
                hint="s3vault key import NAME --recovery ...",
            )
        validate_name(chosen)
        key = self._build(chosen)
        expected = self.header["fingerprint"].strip().lower()
        if not _HEX16.fullmatch(expected) or key.fingerprint != expected:
            raise UsageError(
                "the key read from the recovery kit does not match the fingerprint in "
                "its header: nothing was stored",
                hint="Check the 'fingerprint:' line, then every line of the key.",
            )
        if key.bits is not None and str(key.bits) != self.header.get("bits", "").strip():
            raise UsageError(
                f"the kit's header says {self.header.get('bits', '?')[:6]} bits, the key "
                f"has {key.bits}",
                hint="Check the 'bits:' line of the kit.",
            )
        return key

    def _build(self, name: str) -> MasterKey:
        if self.key_id is not None:
            return KmsKey(name, self.key_id)
        if self.pem:
            return parse_rsa(name, ("\n".join(self.pem) + "\n").encode("ascii", "replace"))
        bits = self._bits()
        chars = "".join(self.groups)
        value = 0
        for c in chars:
            value = value << 5 | _VALUE[c]
        spare = len(chars) * 5 - bits
        if value & ((1 << spare) - 1):
            # Every group checked, yet the padding is not zero: not a kit we wrote.
            raise UsageError(
                "the key's last group has bits set past the key's end",
                hint="Check the 'bits:' line and the last group of the kit.",
            )
        return AesKey(name, (value >> spare).to_bytes(bits // 8, "big"))


def decode(text: str, *, name: str | None = None) -> MasterKey:
    """The key in a whole kit ``text``; UsageError at the first line that is wrong."""
    reader = KitReader()
    for line in text.splitlines():
        reader.feed(line)
    return reader.key(name)

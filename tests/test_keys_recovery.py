"""The recovery kit's format (s3vault/keys/recovery.py): pure, no service."""

from __future__ import annotations

import os
import re

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from s3vault.errors import UsageError
from s3vault.keys.material import AesKey, KmsKey, RsaKey, parse_rsa
from s3vault.keys.recovery import (
    ALPHABET,
    FIRST_LINE,
    KitReader,
    check_char,
    decode,
    encode,
)

GROUP_LINE = re.compile(r"(\d+): (.*)")


@pytest.fixture(scope="module")
def rsa_key() -> RsaKey:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    return parse_rsa("partner", pem)


def aes_kit(size: int = 32) -> tuple[AesKey, list[str]]:
    key = AesKey("laptop-2026", os.urandom(size))
    return key, encode(key, created="2026-01-02T03:04:05+00:00").splitlines()


def group_lines(lines: list[str]) -> list[tuple[int, int, list[str]]]:
    """(index in the kit, line number, groups) of every group line."""
    found = []
    for i, line in enumerate(lines):
        match = GROUP_LINE.fullmatch(line)
        if match:
            found.append((i, int(match.group(1)), match.group(2).split(" ")))
    return found


def refused(lines: list[str]) -> str:
    with pytest.raises(UsageError) as caught:
        decode("\n".join(lines))
    return caught.value.message


# --- round trips -----------------------------------------------------------------------


@pytest.mark.parametrize(("size", "groups", "lines"), [(16, 7, 2), (24, 10, 3), (32, 13, 4)])
def test_aes_keys_round_trip_with_their_header(size: int, groups: int, lines: int) -> None:
    key, kit = aes_kit(size)
    assert kit[0] == FIRST_LINE
    assert "type: aes" in kit
    assert f"bits: {size * 8}" in kit
    assert f"fingerprint: {key.fingerprint}" in kit
    assert "created: 2026-01-02T03:04:05+00:00" in kit
    found = group_lines(kit)
    assert [n for _, n, _ in found] == list(range(1, lines + 1))
    assert sum(len(g) for _, _, g in found) == groups
    back = decode("\n".join(kit))
    assert isinstance(back, AesKey)
    assert (back.name, back.secret) == ("laptop-2026", key.secret)


def test_keys_of_all_zero_and_all_one_bits_round_trip() -> None:
    for secret in (bytes(32), b"\xff" * 32, bytes(16), b"\xff" * 24):
        key = AesKey("edge", secret)
        assert decode(encode(key)) == key


def test_rsa_key_round_trips_as_its_pem_under_the_header(rsa_key: RsaKey) -> None:
    text = encode(rsa_key)
    assert rsa_key.private_pem.decode() in text
    assert "type: rsa" in text
    assert "bits: 2048" in text
    back = decode(text)
    assert isinstance(back, RsaKey)
    assert back.private_pem == rsa_key.private_pem


def test_kms_key_round_trips_as_its_id() -> None:
    key = KmsKey("prod", "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd")
    text = encode(key)
    assert f"key-id: {key.key_id}" in text
    assert "bits:" not in text
    assert decode(text) == key


def test_the_name_defaults_to_the_kits_and_can_be_given() -> None:
    key, kit = aes_kit()
    assert decode("\n".join(kit), name="restored").name == "restored"
    nameless = [line for line in kit if not line.startswith("name:")]
    with pytest.raises(UsageError, match="give a NAME"):
        decode("\n".join(nameless))
    assert decode("\n".join(nameless), name="given").fingerprint == key.fingerprint
    with pytest.raises(UsageError, match="invalid key name"):
        decode("\n".join(kit), name="bad/name")


# --- every mistake is caught ---------------------------------------------------------------


def test_every_single_substitution_in_every_group_is_caught_and_located() -> None:
    _, kit = aes_kit()
    for index, number, groups in group_lines(kit):
        for g, group in enumerate(groups):
            for c, original in enumerate(group):
                for other in ALPHABET:
                    if other == original:
                        continue
                    typo = groups.copy()
                    typo[g] = group[:c] + other + group[c + 1 :]
                    lines = kit.copy()
                    lines[index] = f"{number}: {' '.join(typo)}"
                    message = refused(lines)
                    assert message == f"line {number}, group {g + 1} does not check: retype it"
    # The messages never hold the key: they are the fixed sentence above.


def test_every_substitution_in_the_fingerprint_is_caught() -> None:
    key, kit = aes_kit()
    index = kit.index(f"fingerprint: {key.fingerprint}")
    for c, original in enumerate(key.fingerprint):
        for other in "0a5f":
            if other == original:
                continue
            lines = kit.copy()
            lines[index] = f"fingerprint: {key.fingerprint[:c]}{other}{key.fingerprint[c + 1 :]}"
            assert "does not match the fingerprint" in refused(lines)


def test_every_swap_of_two_characters_in_a_group_is_caught() -> None:
    for _ in range(5):  # several random keys: swaps of many different pairs
        _, kit = aes_kit()
        for index, number, groups in group_lines(kit):
            for g, group in enumerate(groups):
                for c in range(len(group) - 1):
                    for d in range(c + 1, len(group)):
                        if group[c] == group[d]:
                            continue
                        chars = list(group)
                        chars[c], chars[d] = chars[d], chars[c]
                        typo = groups.copy()
                        typo[g] = "".join(chars)
                        lines = kit.copy()
                        lines[index] = f"{number}: {' '.join(typo)}"
                        assert f"line {number}, group {g + 1} does not check" in refused(lines)


def test_check_catches_the_swap_luhn_mod_32_misses() -> None:
    # Luhn mod N cannot tell "A7" from "7A" (first and last symbols of the alphabet).
    for place in range(13):
        assert check_char(place, "A7QQ") != check_char(place, "7AQQ")


def test_swapped_groups_and_swapped_lines_are_caught() -> None:
    _, kit = aes_kit()
    found = group_lines(kit)
    index, number, groups = found[0]
    if groups[0] != groups[1]:
        lines = kit.copy()
        lines[index] = f"{number}: {' '.join([groups[1], groups[0], *groups[2:]])}"
        assert "line 1, group 1 does not check" in refused(lines)
    # Line 2's groups typed as line 1 and the other way round (labels in order).
    (i1, _, g1), (i2, _, g2) = found[0], found[1]
    lines = kit.copy()
    lines[i1], lines[i2] = f"1: {' '.join(g2)}", f"2: {' '.join(g1)}"
    assert "line 1, group 1 does not check" in refused(lines)
    # A line left out: the next one's label says so.
    assert "expected line 2" in refused(kit[:i2] + kit[i2 + 1 :])


def test_a_kit_cut_short_is_refused() -> None:
    _, kit = aes_kit()
    last = group_lines(kit)[-1][0]
    assert "line 4 of 4 of the key is missing" in refused(kit[:last])
    assert refused([*kit[:last], "4: ABC"]) == (
        "line 4, group 1 has 3 characters; line 4 should hold 1 group of 5: retype it"
    )


def test_a_header_fingerprint_of_another_key_is_refused() -> None:
    key, kit = aes_kit()
    other = AesKey("x", os.urandom(32))
    lines = [line.replace(key.fingerprint, other.fingerprint) for line in kit]
    message = refused(lines)
    assert "does not match the fingerprint" in message
    assert "nothing was stored" in message


def test_header_problems_are_refused_with_what_to_check(rsa_key: RsaKey) -> None:
    _, kit = aes_kit()
    assert "not an s3vault recovery kit" in refused(kit[1:])
    assert "format v2" in refused(["s3vault recovery kit v2", *kit[1:]])
    assert "'bits:'" in refused([line.replace("bits: 256", "bits: 100") for line in kit])
    # A wrong but valid size: the lines no longer hold what that size needs.
    assert "line 2 should hold 3 groups" in refused(
        [line.replace("bits: 256", "bits: 128") for line in kit]
    )
    assert "unknown key type" in refused([line.replace("type: aes", "type: des") for line in kit])
    assert "holds groups" in refused([line.replace("type: aes", "type: rsa") for line in kit])
    assert "no 'fingerprint:'" in refused([ln for ln in kit if not ln.startswith("finger")])
    assert "unknown header line" in refused([*kit[:2], "colour: blue", *kit[2:]])
    pem = encode(rsa_key).splitlines()
    assert "says 4096 bits" in refused([ln.replace("bits: 2048", "bits: 4096") for ln in pem])
    body = next(i for i, line in enumerate(pem) if line.startswith("MII"))
    pem[body + 3] = (
        pem[body + 3][:10] + ("A" if pem[body + 3][10] != "A" else "B") + pem[body + 3][11:]
    )
    refused(pem)  # a changed PEM character: unreadable or another fingerprint


def test_text_after_the_kit_is_refused() -> None:
    _, kit = aes_kit()
    assert "more lines" in refused([*kit, "5: ABCDE"])


# --- what people type ----------------------------------------------------------------------


def test_case_spaces_dashes_labels_and_look_alikes_are_forgiven() -> None:
    key, kit = aes_kit()
    table = str.maketrans({"O": "0", "I": "1", "B": "8"})
    for variant in (
        lambda line, groups: " ".join(groups).lower(),  # no label, lower case
        lambda line, groups: "-".join(groups).translate(table),  # dashes, 0/1/8
        lambda line, groups: "  " + line.replace(" ", "  ").lower() + "\t",
        lambda line, groups: "".join(groups),  # no separator at all
        lambda line, groups: " ".join(g[:2] + " " + g[2:] for g in groups),  # split groups
    ):
        lines = kit.copy()
        for index, _, groups in group_lines(kit):
            lines[index] = variant(kit[index], groups)
        lines = [ln.upper() if ln.startswith("fingerprint") else ln for ln in lines]
        assert decode("\n".join(lines)) == key


def test_the_reader_keeps_its_place_after_a_bad_line_so_it_can_be_retyped() -> None:
    key, kit = aes_kit()
    reader = KitReader()
    found = {index: (number, groups) for index, number, groups in group_lines(kit)}
    for i, line in enumerate(kit):
        if i in found:
            number, groups = found[i]
            assert reader.prompt().endswith(f"line {number} of 4")
            bad = groups.copy()
            bad[-1] = bad[-1][:-1] + ("A" if bad[-1][-1] != "A" else "B")
            with pytest.raises(UsageError, match=f"line {number}, group {len(groups)}"):
                reader.feed(" ".join(bad))
        reader.feed(line)
    assert reader.done
    assert reader.key() == key

"""The sync part of the config: folder and agent settings, defaults and messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from s3vault.config.sync import (
    AgentSettings,
    FolderSettings,
    check_folders,
    normalise_prefix,
    parse_duration,
    parse_rate,
)

MINIMAL = {"path": "/data/docs", "bucket": "my-vault", "key": "laptop-2026"}


def folder(**overrides: Any) -> FolderSettings:
    return FolderSettings.model_validate({**MINIMAL, **overrides})


def error_of(model: type[Any], data: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    return str(caught.value)


def test_defaults() -> None:
    f = folder()
    assert f.path == Path("/data/docs")
    assert (f.prefix, f.format, f.envelope, f.delete) == ("", "v3", "metadata", "mirror")
    assert (f.ignore, f.follow_symlinks) == ([], False)
    assert (f.max_delete_percent, f.max_delete_files) == (50, 1000)
    a = AgentSettings()
    assert (a.workers, a.debounce_ms, a.rescan_interval, a.bandwidth_limit) == (8, 500, 3600, None)


def test_the_issue_example() -> None:
    f = folder(
        path="~/Documents",
        prefix="laptop/documents",
        format="v3",
        envelope="metadata",
        delete="mirror",
        ignore=["*.tmp", "node_modules/"],
    )
    assert f.path == Path.home() / "Documents"
    assert f.prefix == "laptop/documents/"
    assert f.object_key("a/b.txt") == "laptop/documents/a/b.txt"
    assert f.folder_id == "s3://my-vault/laptop/documents/"
    a = AgentSettings.model_validate({"workers": 8, "debounce_ms": 500, "rescan_interval": "1h"})
    assert a.rescan_interval == 3600


@pytest.mark.parametrize("missing", ["path", "bucket", "key"])
def test_required(missing: str) -> None:
    data = dict(MINIMAL)
    del data[missing]
    assert f"{missing}\n  Field required" in error_of(FolderSettings, data)


@pytest.mark.parametrize(
    ("prefix", "normalised"),
    [
        ("", ""),
        ("/", ""),
        ("laptop", "laptop/"),
        ("laptop/", "laptop/"),
        ("/laptop/documents/", "laptop/documents/"),
        (" a/b ", "a/b/"),
    ],
)
def test_prefix_is_normalised(prefix: str, normalised: str) -> None:
    assert normalise_prefix(prefix) == normalised
    f = folder(prefix=prefix)
    assert f.prefix == normalised
    assert f.object_key("x/y") == normalised + "x/y"
    assert f.relpath_of(normalised + "x/y") == "x/y"


@pytest.mark.parametrize("prefix", ["a//b", "a/../b", "./a", "a/."])
def test_ambiguous_prefixes_are_refused(prefix: str) -> None:
    assert "empty, '.' or '..' segment" in error_of(FolderSettings, {**MINIMAL, "prefix": prefix})


def test_relpath_for_keys_outside_the_prefix() -> None:
    f = folder(prefix="laptop")
    assert f.relpath_of("desktop/a") is None
    assert f.relpath_of("laptop/") is None
    assert f.relpath_of("laptopx/a") is None


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"path": "docs"}, "not an absolute path"),
        ({"bucket": "s3://my-vault/x"}, "is a URL: write the bucket name only"),
        ({"bucket": "my vault"}, "not a bucket name"),
        ({"bucket": "a/b"}, "not a bucket name"),
        ({"key": " "}, "master key name cannot be empty"),
        ({"format": "v1"}, "Input should be 'v2' or 'v3'"),
        ({"envelope": "file"}, "'metadata' or 'instruction-file'"),
        ({"delete": "yes"}, "'mirror' or 'keep'"),
        ({"max_delete_percent": 101}, "less than or equal to 100"),
        ({"max_delete_files": -1}, "greater than or equal to 0"),
        ({"ignored": ["x"]}, "Extra inputs are not permitted"),
    ],
)
def test_folder_messages(overrides: dict[str, Any], message: str) -> None:
    assert message in error_of(FolderSettings, {**MINIMAL, **overrides})


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (0, 0),
        (90, 90),
        ("90", 90),
        ("45s", 45),
        ("30m", 1800),
        ("1h", 3600),
        ("1h30m", 5400),
        ("2d", 172800),
        (" 1H ", 3600),
    ],
)
def test_durations(value: object, seconds: int) -> None:
    assert parse_duration(value) == seconds
    assert AgentSettings(rescan_interval=value).rescan_interval == seconds  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["1x", "h", "1.5h", "-5", -5, True, "", "1h 30"])
def test_bad_durations(value: object) -> None:
    message = error_of(AgentSettings, {"rescan_interval": value})
    assert "rescan_interval" in message
    assert "duration" in message


@pytest.mark.parametrize(
    ("value", "rate"),
    [
        (None, None),
        ("off", None),
        ("none", None),
        (0, None),
        (1048576, 1048576),
        ("10MiB", 10 * 1024**2),
        ("10 MiB/s", 10 * 1024**2),
        ("10M", 10 * 1024**2),
        ("2MB", 2_000_000),
        ("500KiB", 500 * 1024),
        ("500kb", 500_000),
        ("1.5GiB", int(1.5 * 1024**3)),
        ("123", 123),
        ("123B", 123),
    ],
)
def test_rates(value: object, rate: int | None) -> None:
    assert parse_rate(value) == rate
    assert AgentSettings(bandwidth_limit=value).bandwidth_limit == rate  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["fast", "10 Mbit", "10XiB", "-1MiB", -1, True, "MiB"])
def test_bad_rates(value: object) -> None:
    message = error_of(AgentSettings, {"bandwidth_limit": value})
    assert "bandwidth_limit" in message
    assert "bandwidth limit" in message


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"workers": 0}, "greater than or equal to 1"),
        ({"debounce_ms": -1}, "greater than or equal to 0"),
        ({"threads": 4}, "Extra inputs are not permitted"),
    ],
)
def test_agent_messages(overrides: dict[str, Any], message: str) -> None:
    assert message in error_of(AgentSettings, overrides)


def test_env_style_strings_are_accepted() -> None:
    # Environment overrides arrive as text (S3VAULT_AGENT_WORKERS=4).
    a = AgentSettings.model_validate(
        {"workers": "4", "debounce_ms": "250", "rescan_interval": "600", "bandwidth_limit": "1M"}
    )
    assert (a.workers, a.debounce_ms, a.rescan_interval, a.bandwidth_limit) == (
        4,
        250,
        600,
        1024**2,
    )


def test_json_schema_admits_the_written_forms() -> None:
    props = AgentSettings.model_json_schema()["properties"]
    kinds = {s["type"] for s in props["rescan_interval"]["anyOf"]}
    assert kinds == {"integer", "string"}
    assert {s["type"] for s in props["bandwidth_limit"]["anyOf"]} == {"integer", "string", "null"}
    assert FolderSettings.model_json_schema()["required"] == ["path", "bucket", "key"]


@pytest.mark.parametrize(
    ("a", "b", "message"),
    [
        ({"path": "/data/docs"}, {"path": "/data/docs", "prefix": "x"}, "overlap: one is inside"),
        ({"path": "/data"}, {"path": "/data/docs", "prefix": "x"}, "overlap: one is inside"),
        ({"path": "/a", "prefix": "p"}, {"path": "/b", "prefix": "p"}, "overlap in S3"),
        ({"path": "/a"}, {"path": "/b", "prefix": "p"}, "overlap in S3"),
        ({"path": "/a", "prefix": "p"}, {"path": "/b", "prefix": "p/q"}, "overlap in S3"),
    ],
)
def test_overlapping_folders_are_refused(
    a: dict[str, Any], b: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        check_folders([folder(**a), folder(**b)])


def test_separate_folders_are_fine() -> None:
    check_folders(
        [
            folder(path="/a", prefix="p"),
            folder(path="/ab", prefix="pq"),  # not nested: names only share a start
            folder(path="/c", bucket="other"),
        ]
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [("5MiB", 5 * 1024**2), ("16MB", 16 * 1000**2), ("8M", 8 * 1024**2), (6291456, 6291456)],
)
def test_transfer_sizes_take_units(text, expected):
    from s3vault.config.model import TransferSettings

    assert TransferSettings(part_size=text).part_size == expected


@pytest.mark.parametrize("text", ["big", "8MiB/s", "-5MiB", True])
def test_a_bad_transfer_size_is_refused(text):
    from pydantic import ValidationError

    from s3vault.config.model import TransferSettings

    with pytest.raises(ValidationError):
        TransferSettings(part_size=text)

"""Rotation benchmark: re-wrapping N objects vs uploading them again.

On a local SeaweedFS with a private gnome-keyring (started here, in a temporary
directory, stopped by PID at the end, also on Ctrl-C), N objects of SIZE are uploaded
with s3vault, then:

- ``rotate --recursive`` re-wraps them all (the command line, as a child process,
  for the wall time a user sees; then the engine in-process, to count bytes);
- ``rotate --recursive --reencrypt`` gives them new data keys (download, decrypt,
  encrypt, upload, read back to verify);
- they are uploaded again (what rotating costs without re-wrapping).

Bytes are what the client's boto3 S3 client sent and received (request and response
headers plus bodies, counted from botocore's events in this process). A re-wrap should
move about the size of the envelopes, not of the data.

    .venv/bin/python bench/bench_rotation.py                      # 1,000 x 1 MiB
    .venv/bin/python bench/bench_rotation.py --objects 200 --object-size 256KiB
    .venv/bin/python bench/bench_rotation.py --json | jq .rows

This is a measurement, not a test: it asserts nothing about timing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import (
    BenchServices,
    MiB,
    dump_json,
    format_table,
    human_size,
    machine_facts,
    make_random_file,
    parse_size,
    run_measured,
    s3vault_cli,
    sigterm_as_interrupt,
    work_dir,
)

BUCKET = "bench-rotation"
KEYS = ("bench-a", "bench-b", "bench-c", "bench-d")
LINK_MBIT = 100


class TrafficMeter:
    """Bytes one boto3 client sends and receives, from botocore events (thread-safe).

    Sent: every request's headers plus its Content-Length. Received: every response's
    headers plus its body (a streamed GetObject body by its Content-Length, which the
    callers read in full; a HEAD response carries no body).
    """

    def __init__(self, client: Any) -> None:
        self.sent = 0
        self.received = 0
        self.requests = 0
        self._lock = threading.Lock()
        client.meta.events.register("before-send.s3", self._on_send)
        client.meta.events.register("after-call.s3", self._on_response)

    def reset(self) -> None:
        with self._lock:
            self.sent = self.received = self.requests = 0

    def _on_send(self, request: Any, **_: Any) -> None:
        size = _header_bytes(request.headers) + int(request.headers.get("Content-Length") or 0)
        with self._lock:
            self.sent += size
            self.requests += 1

    def _on_response(self, http_response: Any, model: Any, **_: Any) -> None:
        size = _header_bytes(http_response.headers)
        if model.has_streaming_output:
            size += int(http_response.headers.get("Content-Length") or 0)
        elif model.http.get("method") != "HEAD":
            size += len(http_response.content or b"")
        with self._lock:
            self.received += size


def _header_bytes(headers: Any) -> int:
    return sum(len(str(k)) + len(str(v)) + 4 for k, v in headers.items())


@dataclass
class Row:
    name: str
    objects: int
    seconds: float
    sent: int | None = None
    received: int | None = None
    requests: int | None = None
    note: str = ""

    @property
    def per_object(self) -> float | None:
        if self.sent is None or self.received is None:
            return None
        return (self.sent + self.received) / self.objects

    def cells(self) -> list[str]:
        def size(n: float | None) -> str:
            return "-" if n is None else human_size(n)

        return [
            self.name,
            str(self.objects),
            f"{self.seconds:.1f}",
            f"{self.objects / self.seconds:.0f}",
            size(self.sent),
            size(self.received),
            size(self.per_object),
            "-" if self.requests is None else str(self.requests),
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "objects": self.objects,
            "seconds": round(self.seconds, 3),
            "objects_per_second": round(self.objects / self.seconds, 1),
            "bytes_sent": self.sent,
            "bytes_received": self.received,
            "bytes_per_object": self.per_object,
            "requests": self.requests,
            "note": self.note,
        }


def timed(
    name: str, objects: int, meter: TrafficMeter, work: Callable[[], object], note: str = ""
) -> Row:
    meter.reset()
    started = time.perf_counter()
    work()
    seconds = time.perf_counter() - started
    return Row(name, objects, seconds, meter.sent, meter.received, meter.requests, note)


def upload_all(vault: Any, source: Path, keys: list[str], key_name: str, workers: int) -> None:
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for future in [pool.submit(vault.put, source, BUCKET, k, key_name=key_name) for k in keys]:
            future.result()


def rotate_all(vault: Any, to_key: str, workers: int, **options: Any) -> Any:
    from s3vault.vault.rotation import RotationOptions, Rotator

    rotator = Rotator(vault, RotationOptions(to_key=to_key, **options))
    report = rotator.new_report(BUCKET, "")
    rotator.rotate_prefix(BUCKET, "", report, workers=workers)
    if report.failed or report.skipped:
        raise SystemExit(f"rotation to {to_key} did not rotate everything: {report.to_json()}")
    return report


def _caching_store(base: type[Any], service: str) -> Any:
    """The keyring store with each key read once.

    `Vault.put` reads its key from the keyring on every call; from 8 threads at once
    that is slow (~0.1-0.3 s a read over D-Bus) and the Secret Service connection is
    not thread-safe. The rotation engine reads each key once per run by itself.
    """

    class CachingKeyStore(base):  # type: ignore[misc,valid-type]
        def __init__(self) -> None:
            super().__init__(service)
            self._cache: dict[str, Any] = {}
            self._cache_lock = threading.Lock()

        def get(self, name: str) -> Any:
            with self._cache_lock:
                if name not in self._cache:
                    self._cache[name] = super().get(name)
                return self._cache[name]

    return CachingKeyStore()


def envelope_bytes(vault: Any, key: str) -> int:
    """The size of one object's envelope as S3 counts user metadata."""
    from s3vault.crypto.envelope import metadata_size

    return metadata_size(vault.remote.head(BUCKET, key).metadata)


def run(args: argparse.Namespace) -> dict[str, Any]:
    with work_dir(args.tmpdir, "s3vrot-") as workdir, BenchServices(workdir) as services:
        # The engine runs in this process: it needs the same environment as the CLI.
        env = services.child_env()
        os.environ.clear()
        os.environ.update(env)
        from s3vault.config.load import load_config
        from s3vault.keys.material import generate_key
        from s3vault.keys.store import KeyStore
        from s3vault.vault.factory import build_vault

        assert services.s3 is not None
        services.s3.create_bucket(BUCKET)
        store = _caching_store(KeyStore, services.keyring_service)
        for name in KEYS:
            store.put(generate_key(name))
        config = load_config()
        config = config.model_copy(
            update={"transfer": config.transfer.model_copy(update={"concurrency": args.workers})}
        )
        vault = build_vault(config, keystore_factory=lambda: store)
        meter = TrafficMeter(vault.remote.client)
        source = make_random_file(workdir / "object.bin", args.object_size)
        keys = [f"data/{i:06}.bin" for i in range(args.objects)]
        n, w = args.objects, args.workers
        rows: list[Row] = []

        print(f"uploading {n} objects of {human_size(args.object_size)} ...", flush=True)
        rows.append(
            timed(
                "upload (s3vault put, engine)",
                n,
                meter,
                lambda: upload_all(vault, source, keys, KEYS[0], w),
            )
        )
        envelope = envelope_bytes(vault, keys[0])

        print("rotate --recursive (command line) ...", flush=True)
        cli = run_measured(
            [
                s3vault_cli(),
                "rotate",
                f"s3://{BUCKET}/",
                "--recursive",
                "--to-key",
                KEYS[1],
                "--workers",
                str(w),
                "--json",
            ],
            env,
            server_pid=services.s3.pid,
        )
        cli_report = json.loads(cli.stdout)
        rows.append(
            Row(
                "rotate -r (CLI process)",
                len(cli_report["rotated"]),
                cli.seconds,
                note="wall time incl. interpreter start-up",
            )
        )

        print("rotate --recursive (engine, counting bytes) ...", flush=True)
        rows.append(timed("rotate -r (engine)", n, meter, lambda: rotate_all(vault, KEYS[2], w)))

        print("rotate --recursive --reencrypt (engine) ...", flush=True)
        rows.append(
            timed(
                "rotate -r --reencrypt (engine)",
                n,
                meter,
                lambda: rotate_all(vault, KEYS[3], w, reencrypt=True),
                note="new data keys; reads each object back to verify",
            )
        )

        print("uploading them again ...", flush=True)
        rows.append(
            timed(
                "re-upload (s3vault put, engine)",
                n,
                meter,
                lambda: upload_all(vault, source, keys, KEYS[0], w),
            )
        )

    upload, rotate = rows[0], rows[2]
    assert upload.per_object is not None and rotate.per_object is not None
    return {
        "objects": args.objects,
        "object_size": args.object_size,
        "workers": args.workers,
        "envelope_bytes": envelope,
        "rows": [r.to_json() for r in rows],
        "table": [r.cells() for r in rows],
        "ratios": {
            "rotate_time_vs_reupload": round(rotate.seconds / rows[-1].seconds, 3),
            "cli_rotate_time_vs_reupload": round(rows[1].seconds / rows[-1].seconds, 3),
            "rotate_bytes_vs_upload": round(rotate.per_object / upload.per_object, 5),
            "rotate_bytes_per_object_vs_envelope": round(rotate.per_object / envelope, 1),
        },
        "machine": machine_facts(),
        "startup_seconds": services.startup_seconds,
    }


def print_text(result: dict[str, Any]) -> None:
    headers = [
        "operation",
        "objects",
        "wall s",
        "obj/s",
        "sent",
        "received",
        "per object",
        "requests",
    ]
    print()
    print(
        f"{result['objects']} objects of {human_size(result['object_size'])}, "
        f"{result['workers']} workers; envelope (user metadata) per object: "
        f"{result['envelope_bytes']} B"
    )
    print(format_table(headers, result["table"]))
    r = result["ratios"]
    print()
    print(
        f"rotate time / re-upload time: {r['rotate_time_vs_reupload']:.3f} (engine), "
        f"{r['cli_rotate_time_vs_reupload']:.3f} (CLI process)"
    )
    print(
        f"rotate traffic / upload traffic: {r['rotate_bytes_vs_upload']:.5f}; "
        f"rotate traffic per object = {r['rotate_bytes_per_object_vs_envelope']} x the envelope "
        "(HEAD, copy, verifying HEAD: headers and XML, no body)"
    )
    upload, rotate = result["rows"][0], result["rows"][2]
    link = LINK_MBIT * 1e6 / 8
    print(
        f"the bytes alone over a {LINK_MBIT} Mbit/s link (each way): upload "
        f"{max(upload['bytes_sent'], upload['bytes_received']) / link:.1f} s, rotate "
        f"{max(rotate['bytes_sent'], rotate['bytes_received']) / link:.2f} s "
        "(arithmetic, not measured: loopback hides the network)"
    )
    load = result["machine"]["load_average"]
    print(f"load average during the run: {load}; services ready in {result['startup_seconds']}")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--objects", type=int, default=1000, help="number of objects (1000)")
    p.add_argument("--object-size", type=parse_size, default=MiB, help="object size (1MiB)")
    p.add_argument("--workers", type=int, default=8, help="parallel objects (8)")
    p.add_argument("--tmpdir", type=Path, default=None, help="parent of the work dir (TMPDIR)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    args, unknown = p.parse_known_args(argv)
    if unknown:
        # run_all.py passes one argument list to every benchmark (e.g. --size, --reps).
        print(f"bench_rotation: ignoring {' '.join(unknown)}", file=sys.stderr)
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    sigterm_as_interrupt()
    try:
        result = run(args)
    except KeyboardInterrupt:
        sys.exit(130)
    if args.json:
        print(dump_json(result))
    else:
        print_text(result)


if __name__ == "__main__":
    main()

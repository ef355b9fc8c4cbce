"""The floor of a no-change sync run (bench_sync case 8): the least any run must do.

    python _floor.py TREE BUCKET PREFIX COUNT

Stats every file under TREE (os.walk + os.stat, no symlinks followed) and lists
s3://BUCKET/PREFIX through obstore (pages of 1000), with the endpoint and keys of
the environment (AWS_ENDPOINT_URL_S3, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_DEFAULT_REGION). Exits 1 unless both counts are COUNT.
"""

from __future__ import annotations

import os
import sys

import obstore
from obstore.store import S3Store


def main() -> int:
    tree, bucket, prefix, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    files = 0
    for directory, _dirs, names in os.walk(tree):
        for name in names:
            os.stat(os.path.join(directory, name), follow_symlinks=False)
            files += 1
    endpoint = os.environ["AWS_ENDPOINT_URL_S3"]
    store = S3Store(
        bucket,
        endpoint=endpoint,
        access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
        secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
        region=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        virtual_hosted_style_request=False,
        client_options={"allow_http": endpoint.startswith("http:")},
    )
    objects = sum(len(page) for page in obstore.list(store, prefix, chunk_size=1000))
    if (files, objects) != (count, count):
        print(f"floor: {files} files, {objects} objects, expected {count}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

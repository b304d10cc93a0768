"""Object store: both backends through the same tests; S3 against a moto server on 127.0.0.1."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pandas as pd
import pytest
import requests
from minio import Minio
from minio.error import S3Error
from urllib3.exceptions import ProtocolError

from chicago_arrest.core import store as store_mod
from chicago_arrest.core.settings import Settings
from chicago_arrest.core.store import (
    KeyNotFoundError,
    LocalStore,
    ObjectStore,
    S3Store,
    StoreError,
    make_store,
    read_parquet,
    write_parquet,
)
from tests.moto_s3 import free_port, moto_server

ACCESS, SECRET = "testing-access", "testing-secret-value"


def unique_bucket() -> str:
    return f"t-{uuid.uuid4().hex[:16]}"


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    with moto_server() as endpoint:
        yield endpoint


def raw_minio(endpoint: str) -> Minio:
    return Minio(endpoint, access_key=ACCESS, secret_key=SECRET, secure=False, region="us-east-1")


@dataclass
class Backend:
    """A store plus backend-specific hooks to look under it and to break its writes."""

    name: str
    store: ObjectStore
    raw_keys: Callable[[], list[str]]
    break_upload: Callable[[pytest.MonkeyPatch], None]
    break_commit: Callable[[pytest.MonkeyPatch], None]


def _local_backend(root: Path) -> Backend:
    store = LocalStore(root)

    def raw_keys() -> list[str]:
        if not root.exists():
            return []
        return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())

    def boom(*_args: object, **_kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    def break_upload(mp: pytest.MonkeyPatch) -> None:
        mp.setattr(store_mod.os, "fsync", boom)

    def break_commit(mp: pytest.MonkeyPatch) -> None:
        mp.setattr(store_mod.os, "replace", boom)

    return Backend("local", store, raw_keys, break_upload, break_commit)


def _s3_backend(endpoint: str) -> Backend:
    bucket = unique_bucket()
    store = S3Store(endpoint, ACCESS, SECRET, bucket)
    client = raw_minio(endpoint)

    def raw_keys() -> list[str]:
        if not client.bucket_exists(bucket_name=bucket):
            return []
        objects = client.list_objects(bucket_name=bucket, recursive=True)
        return sorted(str(o.object_name) for o in objects)

    def boom(*_args: object, **_kwargs: object) -> None:
        raise ProtocolError("Connection aborted.", ConnectionResetError(104, "Connection reset by peer"))

    def break_upload(mp: pytest.MonkeyPatch) -> None:
        mp.setattr(store._client, "put_object", boom)

    def break_commit(mp: pytest.MonkeyPatch) -> None:
        # A large object goes up in parts; the failure comes after they were sent, when the upload completes.
        mp.setattr(store._client, "_complete_multipart_upload", boom)

    return Backend("s3", store, raw_keys, break_upload, break_commit)


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "local":
        return _local_backend(tmp_path / "store")
    return _s3_backend(request.getfixturevalue("moto_endpoint"))


# -- the interface, both backends ---------------------------------------------------------------------------


def test_backends_implement_the_protocol(backend: Backend) -> None:
    assert isinstance(backend.store, ObjectStore)


def test_round_trip(backend: Backend) -> None:
    store = backend.store
    data = bytes(range(256)) * 100
    assert not store.exists("raw/a.bin")
    store.put_bytes("raw/a.bin", data)
    assert store.exists("raw/a.bin")
    assert store.get_bytes("raw/a.bin") == data
    store.put_bytes("empty", b"")
    assert store.get_bytes("empty") == b""
    assert backend.raw_keys() == ["empty", "raw/a.bin"]


def test_list_by_prefix(backend: Backend) -> None:
    store = backend.store
    keys = ["raw/crimes/2017-02.parquet", "raw/crimes/2017-01.parquet", "raw/police_stations.parquet", "x/y"]
    for key in keys:
        store.put_bytes(key, key.encode())
    assert store.list_keys("raw/crimes/") == ["raw/crimes/2017-01.parquet", "raw/crimes/2017-02.parquet"]
    assert store.list_keys("raw/") == sorted(keys[:3])
    assert store.list_keys("raw/crimes/2017-0") == [
        "raw/crimes/2017-01.parquet",
        "raw/crimes/2017-02.parquet",
    ]
    assert store.list_keys("raw/police") == ["raw/police_stations.parquet"]
    assert store.list_keys("") == sorted(keys)
    assert store.list_keys("nothing/") == []


def test_missing_key_raises_clear_error(backend: Backend) -> None:
    store = backend.store
    store.put_bytes("raw/present", b"1")
    with pytest.raises(KeyNotFoundError) as info:
        store.get_bytes("raw/crimes/2017-13.parquet")
    err = info.value
    assert isinstance(err, KeyError)
    assert isinstance(err, LookupError)
    assert isinstance(err, StoreError)
    assert err.key == "raw/crimes/2017-13.parquet"
    assert "raw/crimes/2017-13.parquet" in str(err)
    assert store.uri() in str(err)
    # A "folder" is not an object.
    with pytest.raises(KeyNotFoundError):
        store.get_bytes("raw")
    assert not store.exists("raw")


def test_overwrite_replaces(backend: Backend) -> None:
    store = backend.store
    store.put_bytes("k/obj", b"old")
    store.put_bytes("k/obj", b"new content")
    assert store.get_bytes("k/obj") == b"new content"
    assert store.list_keys("k/") == ["k/obj"]
    assert backend.raw_keys() == ["k/obj"]


def test_delete(backend: Backend) -> None:
    store = backend.store
    store.put_bytes("a/b", b"1")
    store.delete("a/b")
    assert not store.exists("a/b")
    assert store.list_keys("a/") == []
    store.delete("a/b")  # deleting a missing key is fine


@pytest.mark.parametrize("stage", ["upload", "commit"])
def test_failed_put_keeps_old_object_and_leaves_no_temp(
    backend: Backend, monkeypatch: pytest.MonkeyPatch, stage: str
) -> None:
    store = backend.store
    store.put_bytes("raw/crimes/2017-01.parquet", b"old complete month")
    (backend.break_upload if stage == "upload" else backend.break_commit)(monkeypatch)
    # Over S3's 5 MiB part size: an S3 write of it is a multipart upload.
    large = b"new month " * 600_000
    with pytest.raises(StoreError):
        store.put_bytes("raw/crimes/2017-01.parquet", large)
    with pytest.raises(StoreError):
        store.put_bytes("raw/crimes/2017-02.parquet", large)
    monkeypatch.undo()
    assert store.get_bytes("raw/crimes/2017-01.parquet") == b"old complete month"
    assert not store.exists("raw/crimes/2017-02.parquet")
    assert store.list_keys("raw/") == ["raw/crimes/2017-01.parquet"]
    # Looking under the store: no temporary object survived the failure.
    assert backend.raw_keys() == ["raw/crimes/2017-01.parquet"]


def test_uri(backend: Backend) -> None:
    store = backend.store
    if backend.name == "local":
        assert isinstance(store, LocalStore)
        assert store.uri("raw/x.parquet") == (store.root / "raw" / "x.parquet").as_uri()
        assert store.uri().startswith("file:///")
    else:
        assert isinstance(store, S3Store)
        assert store.uri("raw/x.parquet") == f"s3://{store.bucket}/raw/x.parquet"


@pytest.mark.parametrize("key", ["", "/abs", "a//b", "a/../b", "./a", "a\\b", "a.tmp-" + "0" * 32])
def test_invalid_keys_rejected(backend: Backend, key: str) -> None:
    with pytest.raises(StoreError, match="invalid object key"):
        backend.store.put_bytes(key, b"x")


def test_parquet_helpers_round_trip(backend: Backend) -> None:
    frame = pd.DataFrame(
        {
            "iucr": pd.array(["0486", "031A", None], dtype="string"),
            "district": pd.array(["005", "", "031"], dtype="string"),
            "n": [1, 2, 3],
        }
    )
    write_parquet(backend.store, "curated/f.parquet", frame)
    back = read_parquet(backend.store, "curated/f.parquet")
    pd.testing.assert_frame_equal(back, frame)
    assert back["iucr"].tolist()[:2] == ["0486", "031A"]


# -- local specifics ----------------------------------------------------------------------------------------


def test_local_temp_files_are_invisible_while_in_flight(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / (".x.parquet.tmp-" + "a" * 32)).write_bytes(b"half")
    store.put_bytes("raw/x.parquet", b"full")
    assert store.list_keys("raw/") == ["raw/x.parquet"]


def test_local_root_is_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = LocalStore("rel/store")
    assert store.root == tmp_path.resolve() / "rel" / "store"


# -- S3 specifics -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bucket", ["Upper", "ab", "under_score", "-leading", "trailing-", "a" * 64])
def test_s3_invalid_bucket_name_is_a_clear_error(bucket: str) -> None:
    with pytest.raises(StoreError, match="invalid bucket name"):
        S3Store("127.0.0.1:9", ACCESS, SECRET, bucket)


def test_s3_missing_bucket_is_created(moto_endpoint: str) -> None:
    bucket = unique_bucket()
    client = raw_minio(moto_endpoint)
    assert not client.bucket_exists(bucket_name=bucket)
    store = S3Store(moto_endpoint, ACCESS, SECRET, bucket)
    assert store.list_keys() == []
    assert client.bucket_exists(bucket_name=bucket)
    store.put_bytes("a", b"1")
    # A second store on the existing bucket sees the object.
    assert S3Store(moto_endpoint, ACCESS, SECRET, bucket).get_bytes("a") == b"1"


def test_s3_unreachable_endpoint_fails_fast_and_clearly() -> None:
    port = free_port()  # nothing listens there any more
    store = S3Store(f"127.0.0.1:{port}", ACCESS, SECRET, unique_bucket(), connect_timeout_s=2)
    started = time.monotonic()
    with pytest.raises(StoreError) as info:
        store.put_bytes("a", b"1")
    assert time.monotonic() - started < 10
    message = str(info.value)
    assert f"http://127.0.0.1:{port}" in message
    assert "cannot reach" in message
    assert "refused" in message.lower()
    assert SECRET not in message


@pytest.fixture
def moto_with_auth(moto_endpoint: str) -> Iterator[tuple[str, str, str]]:
    """Make the moto server check SigV4 signatures against its IAM; yield (endpoint, key id, secret)."""
    url = f"http://{moto_endpoint}"
    iam = boto3.client(
        "iam", endpoint_url=url, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    user = f"u{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=user)
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
    iam.put_user_policy(UserName=user, PolicyName="s3-all", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    previous = requests.post(f"{url}/moto-api/reset-auth", data=b"0", timeout=10).json()
    try:
        yield moto_endpoint, key["AccessKeyId"], key["SecretAccessKey"]
    finally:
        requests.post(
            f"{url}/moto-api/reset-auth",
            data=previous["PREVIOUS_INITIAL_NO_AUTH_ACTION_COUNT"].encode(),
            timeout=10,
        )


def test_s3_wrong_credentials_give_clear_error(moto_with_auth: tuple[str, str, str]) -> None:
    endpoint, key_id, secret = moto_with_auth
    bucket = unique_bucket()
    good = S3Store(endpoint, key_id, secret, bucket)
    good.put_bytes("a", b"1")  # the server really enforces auth: right credentials work
    assert good.get_bytes("a") == b"1"

    for access, wrong_secret in [
        (key_id, "not-the-secret-123"),
        ("AKIAUNKNOWN0000000", "whatever-secret-456"),
    ]:
        bad = S3Store(endpoint, access, wrong_secret, bucket)
        with pytest.raises(StoreError) as info:
            bad.get_bytes("a")
        message = str(info.value)
        assert "rejected the credentials" in message
        assert f"http://{endpoint}" in message
        assert bucket in message
        assert wrong_secret not in message
        assert secret not in message


def test_s3_error_codes_are_translated() -> None:
    """Errors the SDK raises mid-operation become StoreError with the S3 code (no server needed)."""

    class FailingClient:
        def bucket_exists(self, bucket_name: str) -> bool:
            return True

        def get_object(self, bucket_name: str, object_name: str) -> None:
            raise S3Error(
                None,  # type: ignore[arg-type]
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match",
                f"/{bucket_name}/{object_name}",
                "req",
                "host",
            )

    store = S3Store("minio.example:9000", ACCESS, SECRET, "bkt", client=FailingClient())
    with pytest.raises(StoreError, match=r"rejected the credentials \(SignatureDoesNotMatch"):
        store.get_bytes("a")


# -- make_store ---------------------------------------------------------------------------------------------


def test_make_store_local(settings: Settings) -> None:
    store = make_store(settings)
    assert isinstance(store, LocalStore)
    assert store.root == settings.store_dir.resolve()
    store.put_bytes("raw/x", b"1")
    assert (settings.store_dir / "raw" / "x").read_bytes() == b"1"


def test_make_store_s3(settings: Settings, moto_endpoint: str) -> None:
    s3_settings = settings.model_copy(
        update={
            "store_backend": "s3",
            "s3_endpoint": moto_endpoint,
            "s3_bucket": unique_bucket(),
            "s3_access_key": ACCESS,
            "s3_secret_key": settings.s3_secret_key.__class__(SECRET),
        }
    )
    store = make_store(s3_settings)
    assert isinstance(store, S3Store)
    assert SECRET not in repr(store)
    store.put_bytes("raw/x", b"1")
    assert store.uri("raw/x") == f"s3://{s3_settings.s3_bucket}/raw/x"
    response = raw_minio(moto_endpoint).get_object(bucket_name=s3_settings.s3_bucket, object_name="raw/x")
    assert response.read() == b"1"
    assert not os.path.exists(settings.store_dir)

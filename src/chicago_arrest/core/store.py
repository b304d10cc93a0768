"""Object store: one small interface, a local-directory backend and an S3 (MinIO) backend.

Keys are ``/``-separated relative paths (``raw/crimes/2017-01.parquet``). Every write is atomic: a reader sees
the old object or the new one, never a partial one, and an interrupted write leaves no temporary object behind
that :meth:`ObjectStore.list_keys` would report.

* :class:`LocalStore` writes a temporary file in the target's directory, then ``os.replace`` s it into place
  (:func:`~chicago_arrest.core.files.write_atomically`).
* :class:`S3Store` makes one ``PutObject`` (a multipart upload for large objects): S3 and MinIO make an object
  visible only once its upload completed, so a failed or cut upload leaves the previous object in place.

Use :func:`make_store` to build the store the settings ask for.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn, Protocol, runtime_checkable

import pandas as pd

from chicago_arrest.core.errors import ArrestError
from chicago_arrest.core.files import TMP_SUFFIX, write_atomically
from chicago_arrest.core.settings import Settings

logger = logging.getLogger(__name__)

#: A local write's temporary file (``<key>.tmp-<32 hex>``); never reported by ``list_keys`` (nor the temporary
#: objects earlier versions' S3 writes may have left behind).
_TMP_RE = TMP_SUFFIX
#: S3 bucket names: 3-63 lower-case letters, digits, dots and hyphens, starting and ending alphanumeric.
_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
#: S3 error codes that mean "your credentials are wrong or not allowed".
_AUTH_CODES = frozenset(
    {
        "AccessDenied",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "InvalidToken",
        "ExpiredToken",
        "AuthorizationHeaderMalformed",
        "InvalidSecurity",
    }
)


class StoreError(ArrestError):
    """The object store failed: unreachable endpoint, rejected credentials, server error, bad key."""


class KeyNotFoundError(StoreError, KeyError):
    """A key that was read does not exist in the store.

    Attributes:
        key: The missing key.
        store_uri: URI of the store (or the key's would-be URI).
    """

    def __init__(self, key: str, store_uri: str) -> None:
        super().__init__(f"key {key!r} not found in object store {store_uri}")
        self.key = key
        self.store_uri = store_uri

    def __str__(self) -> str:
        # KeyError's str() is the repr of its argument; keep the message readable.
        return str(self.args[0])


@runtime_checkable
class ObjectStore(Protocol):
    """The interface every backend implements."""

    def put_bytes(self, key: str, data: bytes) -> None:
        """Write ``data`` to ``key`` atomically, replacing any existing object."""
        ...

    def get_bytes(self, key: str) -> bytes:
        """Return the object at ``key``; raise :class:`KeyNotFoundError` when it does not exist."""
        ...

    def exists(self, key: str) -> bool:
        """Return whether an object exists at ``key``."""
        ...

    def list_keys(self, prefix: str = "") -> list[str]:
        """Return the keys that start with ``prefix``, sorted (temporary objects excluded)."""
        ...

    def delete(self, key: str) -> None:
        """Delete the object at ``key``; deleting a missing key is not an error."""
        ...

    def uri(self, key: str = "") -> str:
        """Return a URI for ``key`` (``file:///...`` or ``s3://bucket/key``); the store's root when empty."""
        ...


def validate_key(key: str) -> str:
    """Check that ``key`` is a clean relative object key.

    Args:
        key: A ``/``-separated path such as ``raw/crimes/2017-01.parquet``.

    Returns:
        The key, unchanged.

    Raises:
        StoreError: When the key is empty, absolute, has empty / ``.`` / ``..`` segments, a backslash, or
            ends like a temporary object.
    """
    if not key or key.startswith("/") or "\\" in key or "\x00" in key:
        raise StoreError(f"invalid object key {key!r}: expected a relative path like 'raw/x.parquet'")
    if any(part in ("", ".", "..") for part in key.split("/")):
        raise StoreError(f"invalid object key {key!r}: empty, '.' or '..' path segment")
    if _TMP_RE.search(key):
        raise StoreError(f"invalid object key {key!r}: the suffix is reserved for temporary objects")
    return key


class LocalStore:
    """Object store in a local directory: key ``a/b.parquet`` is the file ``<root>/a/b.parquet``.

    Args:
        root: Directory of the store; created on the first write. Made absolute at construction.
    """

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).expanduser().resolve()

    def __repr__(self) -> str:
        return f"LocalStore(root={str(self.root)!r})"

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*validate_key(key).split("/"))

    def put_bytes(self, key: str, data: bytes) -> None:
        """Write ``data`` to ``key`` (:func:`~chicago_arrest.core.files.write_atomically`).

        Args:
            key: Object key.
            data: Content.

        Raises:
            StoreError: When the file cannot be written (the previous object, if any, is left intact).
        """
        path = self._path(key)
        try:
            write_atomically(path, data)
        except OSError as exc:
            raise StoreError(f"cannot write {self.uri(key)}: {exc}") from exc
        logger.debug("wrote %d bytes to %s", len(data), path)

    def get_bytes(self, key: str) -> bytes:
        """Read the object at ``key``.

        Args:
            key: Object key.

        Returns:
            The content.

        Raises:
            KeyNotFoundError: When there is no such object.
        """
        path = self._path(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise KeyNotFoundError(key, self.uri()) from exc
        except OSError as exc:
            raise StoreError(f"cannot read {self.uri(key)}: {exc}") from exc

    def exists(self, key: str) -> bool:
        """Return whether an object exists at ``key``."""
        return self._path(key).is_file()

    def list_keys(self, prefix: str = "") -> list[str]:
        """List the keys that start with ``prefix`` (plain string prefix, not only whole folders).

        Args:
            prefix: Key prefix; empty lists everything.

        Returns:
            Sorted keys, temporary files excluded.
        """
        folder, _, _ = prefix.rpartition("/")
        base = self.root.joinpath(*folder.split("/")) if folder else self.root
        if not base.is_dir():
            return []
        keys = []
        for dirpath, _dirs, files in os.walk(base):
            rel = Path(dirpath).relative_to(self.root).as_posix()
            for name in files:
                if _TMP_RE.search(name):
                    continue
                key = name if rel == "." else f"{rel}/{name}"
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    def delete(self, key: str) -> None:
        """Delete the object at ``key`` (no error when missing)."""
        with contextlib.suppress(FileNotFoundError):
            self._path(key).unlink()

    def uri(self, key: str = "") -> str:
        """Return ``file:///<root>/<key>`` (a folder-like key such as ``raw/crimes/`` is accepted too)."""
        key = key.rstrip("/")
        return (self._path(key) if key else self.root).as_uri()


class S3Store:
    """Object store in an S3 bucket (MinIO, SeaweedFS, AWS) through the ``minio`` SDK.

    The bucket is checked (and created when missing) on first use. Network, credential and server failures
    surface as :class:`StoreError` naming the endpoint, the bucket and the cause; the secret key never appears
    in messages or logs.

    Args:
        endpoint: ``host:port`` of the S3 API.
        access_key: Access key.
        secret_key: Secret key.
        bucket: Bucket name.
        secure: Use HTTPS.
        region: Region (also spares the SDK a GetBucketLocation round trip).
        connect_timeout_s: TCP connect timeout per attempt.
        read_timeout_s: Read timeout per attempt.
        retries: Retries of a failed HTTP request (connection errors and 5xx) inside the HTTP client.
        client: A ready ``minio.Minio`` client (tests); overrides the connection arguments.

    Raises:
        StoreError: If ``bucket`` is not a valid S3 bucket name (checked before anything is sent).
    """

    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        *,
        secure: bool = False,
        region: str | None = "us-east-1",
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 120.0,
        retries: int = 2,
        client: Any = None,
    ) -> None:
        from minio import Minio

        if not _BUCKET_RE.fullmatch(bucket):
            raise StoreError(f"invalid bucket name {bucket!r}: 3-63 lower-case letters, digits, '.' or '-'")
        self.endpoint = endpoint
        self.bucket = bucket
        self.secure = secure
        self._bucket_ready = False
        if client is None:
            client = Minio(
                endpoint,
                access_key=access_key,
                secret_key=secret_key,
                secure=secure,
                region=region,
                http_client=_http_client(secure, connect_timeout_s, read_timeout_s, retries),
            )
        self._client = client

    def __repr__(self) -> str:
        return f"S3Store(endpoint={self.endpoint_url!r}, bucket={self.bucket!r})"

    @property
    def endpoint_url(self) -> str:
        """``http(s)://host:port`` of the S3 API."""
        return f"{'https' if self.secure else 'http'}://{self.endpoint}"

    # -- error translation -------------------------------------------------------------------------------

    def _fail(self, action: str, exc: BaseException) -> NoReturn:
        from minio.error import InvalidResponseError, S3Error, ServerError

        where = f"S3 endpoint {self.endpoint_url}, bucket {self.bucket!r}"
        if isinstance(exc, S3Error):
            if exc.code in _AUTH_CODES:
                msg = (
                    f"{action} failed: {where} rejected the credentials ({exc.code}: {exc.message}); "
                    "check s3_access_key / s3_secret_key (ARREST_S3_ACCESS_KEY / ARREST_S3_SECRET_KEY) "
                    "and the user's permissions on the bucket"
                )
            else:
                msg = f"{action} failed at {where}: {exc.code}: {exc.message}"
        elif isinstance(exc, ServerError):
            msg = f"{action} failed at {where}: server error HTTP {exc.status_code}: {exc}"
        elif isinstance(exc, InvalidResponseError):
            msg = f"{action} failed: {where} did not answer like an S3 API ({exc}); check s3_endpoint"
        else:
            msg = (
                f"{action} failed: cannot reach {where}: {type(exc).__name__}: {_root_cause(exc)}; "
                "check s3_endpoint / s3_secure and that the server is up"
            )
        raise StoreError(msg) from exc

    @contextlib.contextmanager
    def _translate(self, action: str) -> Iterator[None]:
        from minio.error import MinioException
        from urllib3.exceptions import HTTPError as Urllib3Error

        try:
            yield
        except (MinioException, Urllib3Error, OSError) as exc:
            self._fail(action, exc)

    def _ready(self) -> None:
        if self._bucket_ready:
            return
        with self._translate("checking the bucket"):
            if not self._client.bucket_exists(bucket_name=self.bucket):
                logger.info("creating bucket %r at %s", self.bucket, self.endpoint_url)
                try:
                    self._client.make_bucket(bucket_name=self.bucket)
                except Exception as exc:
                    code = getattr(exc, "code", None)
                    # Lost a creation race with another writer: fine.
                    if code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                        raise
        self._bucket_ready = True

    def ensure_bucket(self) -> bool:
        """Create the bucket if it is missing (idempotent).

        Returns:
            ``True`` if the bucket was created now, ``False`` if it existed.

        Raises:
            StoreError: If the S3 API cannot be reached or refuses.
        """
        with self._translate("checking the bucket"):
            existed = bool(self._client.bucket_exists(bucket_name=self.bucket))
        self._ready()
        return not existed

    # -- ObjectStore -------------------------------------------------------------------------------------

    def put_bytes(self, key: str, data: bytes) -> None:
        """Upload ``data`` to ``key`` in one ``put_object`` (S3 makes it visible only once complete).

        Args:
            key: Object key.
            data: Content.

        Raises:
            StoreError: On any failure; the previous object at ``key`` (if any) is left intact (minio aborts a
                multipart upload that failed part way).
        """
        validate_key(key)
        self._ready()
        with self._translate(f"writing {self.uri(key)}"):
            self._client.put_object(
                bucket_name=self.bucket,
                object_name=key,
                data=io.BytesIO(data),
                length=len(data),
                content_type="application/octet-stream",
            )
        logger.debug("wrote %d bytes to %s", len(data), self.uri(key))

    def get_bytes(self, key: str) -> bytes:
        """Download the object at ``key``.

        Args:
            key: Object key.

        Returns:
            The content.

        Raises:
            KeyNotFoundError: When there is no such object.
            StoreError: On any other failure.
        """
        from minio.error import S3Error

        validate_key(key)
        self._ready()
        response = None
        try:
            with self._translate(f"reading {self.uri(key)}"):
                try:
                    response = self._client.get_object(bucket_name=self.bucket, object_name=key)
                except S3Error as exc:
                    if exc.code in ("NoSuchKey", "NoSuchObject"):
                        raise KeyNotFoundError(key, self.uri()) from exc
                    raise
                return bytes(response.read())
        finally:
            if response is not None:
                response.close()
                response.release_conn()

    def exists(self, key: str) -> bool:
        """Return whether an object exists at ``key``."""
        from minio.error import S3Error

        validate_key(key)
        self._ready()
        with self._translate(f"checking {self.uri(key)}"):
            try:
                self._client.stat_object(bucket_name=self.bucket, object_name=key)
            except S3Error as exc:
                if exc.code in ("NoSuchKey", "NoSuchObject", "ResourceNotFound"):
                    return False
                raise
        return True

    def list_keys(self, prefix: str = "") -> list[str]:
        """List the keys that start with ``prefix``.

        Args:
            prefix: Key prefix; empty lists the whole bucket.

        Returns:
            Sorted keys, temporary objects excluded.
        """
        self._ready()
        with self._translate(f"listing {self.uri(prefix)}"):
            names = [
                obj.object_name
                for obj in self._client.list_objects(
                    bucket_name=self.bucket, prefix=prefix or None, recursive=True
                )
            ]
        return sorted(n for n in names if n and not n.endswith("/") and not _TMP_RE.search(n))

    def delete(self, key: str) -> None:
        """Delete the object at ``key`` (no error when missing)."""
        validate_key(key)
        self._ready()
        with self._translate(f"deleting {self.uri(key)}"):
            self._client.remove_object(bucket_name=self.bucket, object_name=key)

    def uri(self, key: str = "") -> str:
        """Return ``s3://<bucket>/<key>``."""
        return f"s3://{self.bucket}/{key}"


def _http_client(secure: bool, connect_timeout_s: float, read_timeout_s: float, retries: int) -> Any:
    """Build the urllib3 pool for the minio client: short connect timeout, few retries (no retry storm)."""
    import urllib3

    kwargs: dict[str, Any] = {}
    if secure:
        import certifi

        kwargs = {
            "cert_reqs": "CERT_REQUIRED",
            "ca_certs": os.environ.get("SSL_CERT_FILE") or certifi.where(),
        }
    return urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=connect_timeout_s, read=read_timeout_s),
        maxsize=10,
        retries=urllib3.Retry(
            total=retries,
            connect=retries,
            read=retries,
            backoff_factor=0.2,
            backoff_max=2.0,
            status_forcelist=[500, 502, 503, 504],
            raise_on_status=False,
        ),
        **kwargs,
    )


def _root_cause(exc: BaseException) -> str:
    """Return the innermost reason of a urllib3 error (``MaxRetryError.reason``) as text."""
    reason: object = getattr(exc, "reason", None)
    while isinstance(reason, BaseException) and getattr(reason, "reason", None) is not None:
        reason = getattr(reason, "reason", None)
    return str(reason if reason is not None else exc)


def make_store(settings: Settings, *, bucket: str | None = None) -> ObjectStore:
    """Build the object store the settings ask for.

    Args:
        settings: ``store_backend`` picks the backend: ``local`` (root ``settings.store_dir``) or ``s3``
            (``s3_endpoint``, ``s3_bucket``, credentials, ``s3_secure``, ``s3_region``).
        bucket: Another bucket than ``s3_bucket`` on the same S3 API (locally: a sub-folder of the store).

    Returns:
        A :class:`LocalStore` or an :class:`S3Store`.
    """
    if settings.store_backend == "s3":
        store: ObjectStore = S3Store(
            settings.s3_endpoint,
            settings.s3_access_key,
            settings.s3_secret_key.get_secret_value(),
            bucket or settings.s3_bucket,
            secure=settings.s3_secure,
            region=settings.s3_region,
        )
    else:
        store = LocalStore(settings.store_dir / bucket if bucket else settings.store_dir)
    logger.info("object store: %s", store.uri())
    return store


def write_parquet(store: ObjectStore, key: str, frame: pd.DataFrame) -> None:
    """Write ``frame`` as Parquet (pyarrow, no index) to ``key`` atomically.

    Args:
        store: Target store.
        key: Object key.
        frame: Data; its index is not stored.
    """
    buffer = io.BytesIO()
    frame.to_parquet(buffer, engine="pyarrow", index=False)
    store.put_bytes(key, buffer.getvalue())


def read_parquet(store: ObjectStore, key: str) -> pd.DataFrame:
    """Read the Parquet object at ``key``.

    Args:
        store: Source store.
        key: Object key.

    Returns:
        The frame (pandas dtypes restored from the Parquet metadata).

    Raises:
        KeyNotFoundError: When there is no such object.
    """
    return pd.read_parquet(io.BytesIO(store.get_bytes(key)), engine="pyarrow")

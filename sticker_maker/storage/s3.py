"""Outputs in an S3-compatible object store (AWS S3, MinIO, SeaweedFS, Ceph RGW, R2 …).

Configured by one URL::

    s3://BUCKET[/PREFIX]?endpoint=http://host:8333&region=us-east-1&redirect=false

``endpoint`` is left out for AWS itself; ``region`` defaults to ``$AWS_DEFAULT_REGION``
or ``us-east-1``; ``redirect=true`` makes ``GET /files/NAME`` answer with a
one-hour presigned URL instead of streaming the bytes through the API (use it
when clients can reach the object store). Credentials come from the standard
AWS chain: ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` (and
``AWS_SESSION_TOKEN``), ``~/.aws``, or an instance role. A missing bucket is
created on first use.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sticker_maker.errors import InvalidInput
from sticker_maker.storage.local import content_type, valid_name

_TRUE = {"1", "true", "yes", "on"}
_OPTIONS = {"endpoint", "region", "redirect"}


class S3Storage:
    """One bucket (and key prefix). Objects are written whole: never half an output."""

    def __init__(
        self,
        bucket: str,
        *,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str | None = None,
        redirect: bool = False,
        presign_seconds: int = 3600,
        client: Any = None,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.endpoint_url = endpoint_url
        self.redirect = redirect
        self.presign_seconds = presign_seconds
        self.client = client or _client(endpoint_url, region)
        self._ensure_bucket()

    @classmethod
    def from_url(cls, url: str) -> S3Storage:
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise InvalidInput(f"{url!r} is not s3://BUCKET[/PREFIX][?endpoint=URL]", "storage")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        unknown = sorted(set(query) - _OPTIONS)
        if unknown:
            raise InvalidInput(
                f"unknown option(s) {', '.join(unknown)} in {url!r}; "
                f"allowed: {', '.join(sorted(_OPTIONS))}",
                "storage",
            )
        return cls(
            parts.netloc,
            prefix=parts.path,
            endpoint_url=query.get("endpoint") or None,
            region=query.get("region") or None,
            redirect=query.get("redirect", "").lower() in _TRUE,
        )

    def __repr__(self) -> str:
        where = f" at {self.endpoint_url}" if self.endpoint_url else ""
        return f"S3Storage(s3://{self.bucket}/{self.prefix}{where})"

    def _key(self, name: str) -> str:
        if not valid_name(name):
            raise FileNotFoundError(name)
        return self.prefix + name

    def _ensure_bucket(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
            return
        except ClientError as exc:
            if _code(exc) not in ("404", "NoSuchBucket", "NotFound"):
                raise self._unusable(exc) from None
        except BotoCoreError as exc:
            raise self._unusable(exc) from None
        try:
            self.client.create_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if _code(exc) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise self._unusable(exc) from None

    def reachable(self) -> bool:
        """The bucket answers (``/ready``)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (BotoCoreError, ClientError):
            return False
        return True

    def _unusable(self, exc: Exception) -> InvalidInput:
        return InvalidInput(
            f"cannot use bucket {self.bucket!r}"
            + (f" at {self.endpoint_url}" if self.endpoint_url else "")
            + f": {exc}. Check the endpoint and the AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY "
            "environment variables.",
            "storage",
        )

    # -- the Storage protocol -------------------------------------------------------

    def put(self, name: str, data: bytes) -> None:
        self.client.put_object(
            Bucket=self.bucket, Key=self._key(name), Body=data, ContentType=content_type(name)
        )

    def get(self, name: str) -> bytes:
        return self._object(name)["Body"].read()

    def path(self, name: str) -> None:
        return None  # not on this machine's disk

    def delete(self, name: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(name))

    def open(self, name: str) -> tuple[Iterator[bytes], int]:
        """The object's bytes in chunks, and its size; FileNotFoundError if absent."""
        obj = self._object(name)
        return obj["Body"].iter_chunks(64 * 1024), int(obj["ContentLength"])

    def redirect_url(self, name: str) -> str | None:
        """A presigned GET URL when ``redirect=true``, else None (stream through the API)."""
        if not self.redirect:
            return None
        key = self._key(name)
        self.client.head_object(Bucket=self.bucket, Key=key)  # 404 before redirecting
        return self.client.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.bucket, "Key": key},
            ExpiresIn=self.presign_seconds,
        )

    def _object(self, name: str) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(name))
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404", "NotFound"):
                raise FileNotFoundError(name) from None
            raise


def _code(exc: Any) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _client(endpoint_url: str | None, region: str | None) -> Any:
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise InvalidInput(
            "S3 storage needs boto3: pip install 'sticker-maker[s3]'", "storage"
        ) from None
    config = Config(
        retries={"max_attempts": 5, "mode": "standard"},
        connect_timeout=5,
        read_timeout=60,
        max_pool_connections=32,
        # self-hosted stores (MinIO, SeaweedFS) want path-style URLs
        s3={"addressing_style": "path" if endpoint_url else "auto"},
    )
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=region or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
        config=config,
    )

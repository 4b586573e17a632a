"""The object store through boto3: R2, S3, MinIO or `rclone serve s3` alike.

Machines never get credentials: they get presigned URLs for one object each. Checksums are
computed and validated only when the API requires them: otherwise boto3 fails reading objects
that `rclone serve s3` stored (FlexibleChecksumError), and stores without CRC support refuse
its uploads.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from core.settings import Settings

_DELETE_BATCH = 1000  # DeleteObjects' limit


class StoreError(RuntimeError):
    """The store refused or could not be reached; the message says which and where."""


@dataclass(frozen=True)
class OpenUpload:
    """A multipart upload begun and neither completed nor aborted."""

    key: str
    upload_id: str
    initiated: datetime


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class ObjectStore:
    def __init__(
        self,
        endpoint: str | None,
        access_key: str | None,
        secret_key: str | None,
        bucket: str,
        region: str = "auto",
    ) -> None:
        self.endpoint = endpoint
        self.bucket = bucket
        self.client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            region_name=region,
            config=Config(
                signature_version="s3v4",
                s3={"addressing_style": "path"},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                retries={"max_attempts": 3, "mode": "standard"},
                connect_timeout=5,
                read_timeout=120,
            ),
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> ObjectStore:
        secret = settings.s3_secret_key.get_secret_value() if settings.s3_secret_key else None
        return cls(
            settings.s3_endpoint,
            settings.s3_access_key,
            secret,
            settings.s3_bucket,
            settings.s3_region,
        )

    def _error(self, what: str, exc: Exception) -> StoreError:
        where = self.endpoint or "AWS S3"
        return StoreError(f"object store {where} (bucket {self.bucket}): {what}: {exc}")

    def ensure_bucket(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError:
            try:
                self.client.create_bucket(Bucket=self.bucket)
            except (ClientError, BotoCoreError) as exc:
                raise self._error("creating the bucket", exc) from exc
        except BotoCoreError as exc:
            raise self._error("reaching the bucket", exc) from exc

    def presign_get(self, key: str, ttl_seconds: int) -> str:
        return str(
            self.client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=ttl_seconds
            )
        )

    # --- uploads in one part: the object appears only once the control plane completes it ---

    def start_upload(self, key: str) -> str:
        """Begin a multipart upload; its id."""
        try:
            answer = self.client.create_multipart_upload(Bucket=self.bucket, Key=key)
        except (ClientError, BotoCoreError) as exc:
            raise self._error(f"starting an upload of {key}", exc) from exc
        return str(answer["UploadId"])

    def presign_part(self, key: str, upload_id: str, size: int, ttl_seconds: int) -> str:
        """A URL for the upload's single part. Its length is signed: the store refuses a body
        of any other size."""
        params = {"Bucket": self.bucket, "Key": key, "UploadId": upload_id, "PartNumber": 1}
        return str(
            self.client.generate_presigned_url(
                "upload_part", Params={**params, "ContentLength": size}, ExpiresIn=ttl_seconds
            )
        )

    def complete_upload(self, key: str, upload_id: str, etag: str, size: int) -> None:
        """Make the object of the part the machine sent. The store checks the part is there
        (and is the one whose ETag the machine got back); a lost answer to an earlier try is
        found as the finished object, of the size the part's URL signed."""
        parts = {"Parts": [{"PartNumber": 1, "ETag": etag}]}
        try:
            self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload=parts
            )
        except ClientError as exc:
            if _code(exc) != "NoSuchUpload" or self.size(key) != size:
                raise self._error(f"completing the upload of {key}", exc) from exc
        except BotoCoreError as exc:
            raise self._error(f"completing the upload of {key}", exc) from exc

    def abort_upload(self, key: str, upload_id: str) -> None:
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except ClientError as exc:
            if _code(exc) != "NoSuchUpload":
                raise self._error(f"aborting the upload of {key}", exc) from exc
        except BotoCoreError as exc:
            raise self._error(f"aborting the upload of {key}", exc) from exc

    def open_uploads(self, prefix: str) -> list[OpenUpload]:
        """Multipart uploads under `prefix` still open."""
        found: list[OpenUpload] = []
        try:
            pages = self.client.get_paginator("list_multipart_uploads")
            for page in pages.paginate(Bucket=self.bucket, Prefix=prefix):
                for upload in page.get("Uploads", []):
                    found.append(OpenUpload(upload["Key"], upload["UploadId"], upload["Initiated"]))
        except (ClientError, BotoCoreError) as exc:
            raise self._error(f"listing open uploads under {prefix}", exc) from exc
        return found

    def keys(self, prefix: str) -> list[str]:
        """Every object's key under `prefix`."""
        found: list[str] = []
        try:
            pages = self.client.get_paginator("list_objects_v2")
            for page in pages.paginate(Bucket=self.bucket, Prefix=prefix):
                found.extend(item["Key"] for item in page.get("Contents", []))
        except (ClientError, BotoCoreError) as exc:
            raise self._error(f"listing {prefix}", exc) from exc
        return found

    def size(self, key: str) -> int | None:
        """The object's size, or None when there is no such object."""
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise self._error(f"HEAD {key}", exc) from exc
        except BotoCoreError as exc:
            raise self._error(f"HEAD {key}", exc) from exc
        return int(head["ContentLength"])

    def put(self, key: str, data: bytes) -> None:
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data)
        except (ClientError, BotoCoreError) as exc:
            raise self._error(f"PUT {key}", exc) from exc

    def get(self, key: str) -> bytes:
        try:
            return bytes(self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read())
        except (ClientError, BotoCoreError) as exc:
            raise self._error(f"GET {key}", exc) from exc

    def delete(self, keys: Iterable[str]) -> None:
        batch: list[str] = []
        for key in keys:
            batch.append(key)
            if len(batch) == _DELETE_BATCH:
                self._delete(batch)
                batch = []
        if batch:
            self._delete(batch)

    def _delete(self, keys: list[str]) -> None:
        try:
            answer = self.client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True}
            )
        except (ClientError, BotoCoreError) as exc:
            raise self._error(f"deleting {len(keys)} objects", exc) from exc
        if answer.get("Errors"):
            first = answer["Errors"][0]
            raise StoreError(f"deleting {first.get('Key')}: {first.get('Message')}")

"""PUT and GET against presigned URLs with urllib, retried on transient failures."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from typing import Any

ATTEMPTS = 4
TIMEOUT_SECONDS = 300.0


class TransferError(RuntimeError):
    pass


def _describe(url: str, exc: BaseException) -> str:
    # Only scheme://host:port/path: the query string carries the signature.
    base = url.split("?", 1)[0]
    if isinstance(exc, urllib.error.HTTPError):
        body = exc.read()[:300].decode(errors="replace")
        return f"{base}: HTTP {exc.code} {body}".strip()
    reason = getattr(exc, "reason", exc)
    return f"{base}: {reason}"


def _retry(url: str, request: urllib.request.Request) -> tuple[bytes, str]:
    """The response's body and ETag header ("" without one)."""
    delay = 0.5
    last = ""
    for attempt in range(ATTEMPTS):
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
                return response.read(), response.headers.get("ETag", "")
        except urllib.error.HTTPError as exc:
            last = _describe(url, exc)
            if exc.code < 500 and exc.code != 429:
                break  # a refusal (expired or wrong signature) does not heal by retrying
        except (urllib.error.URLError, OSError) as exc:
            last = _describe(url, exc)
        if attempt + 1 < ATTEMPTS:
            time.sleep(delay)
            delay *= 2
    raise TransferError(last)


def put(url: str, body: bytes | list[Any], size: int | None = None) -> str:
    """Upload `body`: bytes, or a list of buffers sent one after the other (`size` in all),
    which saves joining them into one. The store's ETag for it: completing a multipart upload
    names its parts by them."""
    request = urllib.request.Request(url, data=body, method="PUT")
    length = len(body) if size is None else size
    request.add_header("Content-Length", str(length))
    request.add_header("Content-Type", "application/octet-stream")
    return _retry(url, request)[1]


def get(url: str, byte_range: tuple[int, int] | None = None) -> bytes:
    """The object, or bytes [start, end) of it."""
    request = urllib.request.Request(url, method="GET")
    if byte_range is not None:
        request.add_header("Range", f"bytes={byte_range[0]}-{byte_range[1] - 1}")
    data = _retry(url, request)[0]
    if byte_range is not None and len(data) != byte_range[1] - byte_range[0]:
        raise TransferError("{}: short read".format(url.split("?", 1)[0]))
    return data

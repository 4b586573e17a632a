"""Endpoint keys: one per serverless machine, random, shown once (at enable and at each
rotation), stored only as SHA-256 so that a database leak wakes nobody's GPU."""

from __future__ import annotations

import hashlib
import hmac
import secrets

ENDPOINT_KEY_PREFIX = "dsk_"


def new_endpoint_key() -> str:
    return ENDPOINT_KEY_PREFIX + secrets.token_urlsafe(32)


def hash_endpoint_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_prefix(key: str) -> str:
    """What listings show to tell keys apart."""
    return key[:12]


def key_matches(key: str | None, stored_hash: str) -> bool:
    """Constant-time: a caller learns nothing from how long a wrong key took."""
    if not key:
        return False
    return hmac.compare_digest(hash_endpoint_key(key), stored_hash)

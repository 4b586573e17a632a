"""Webhook secrets and signatures: `X-Dumont-Signature: sha256=<HMAC-SHA256 of the body>`.

Receivers verify with `verify(secret, raw_body, header)`; the secret is per owner, shown once
when created or rotated, and never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"
SIGNATURE_HEADER = "X-Dumont-Signature"
EVENT_HEADER = "X-Dumont-Event"
DELIVERY_HEADER = "X-Dumont-Delivery"


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def sign(secret: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(secret: str, body: bytes, signature: str) -> bool:
    return hmac.compare_digest(sign(secret, body), signature)

"""Endpoint keys: each serverless endpoint has its own (stored hashed), so that a stranger who
knows a machine's id cannot wake, and bill, its GPU. The key travels in `X-Dumont-Key`, or as
`Authorization: Bearer <key>` for clients that can set nothing else; any other Authorization
header is the service's own (vLLM's `--api-key`, an OpenAI client) and passes untouched."""

from __future__ import annotations

from dataclasses import dataclass

from api.gateway.headers import KEY_HEADER, RawHeaders
from core.serverless.keys import key_matches

_BEARER = b"bearer "


@dataclass(frozen=True, slots=True)
class KeyCheck:
    ok: bool
    # The Authorization header carried the key: it is not the service's to see.
    drop_authorization: bool = False
    detail: str = ""


def check_key(headers: RawHeaders, key_hash: str) -> KeyCheck:
    dumont_key: bytes | None = None
    authorization: bytes | None = None
    for name, value in headers:
        if name == KEY_HEADER:
            dumont_key = value
        elif name == b"authorization":
            authorization = value
    if dumont_key is not None:
        if key_matches(dumont_key.decode("latin-1"), key_hash):
            return KeyCheck(True)
        return KeyCheck(False, detail="invalid endpoint key")
    if authorization is not None and authorization[:7].lower() == _BEARER:
        if key_matches(authorization[7:].strip().decode("latin-1"), key_hash):
            return KeyCheck(True, drop_authorization=True)
        return KeyCheck(False, detail="invalid endpoint key")
    return KeyCheck(
        False, detail="missing endpoint key: send it in X-Dumont-Key or Authorization: Bearer"
    )

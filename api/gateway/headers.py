"""Headers on their way through: hop-by-hop ones stay on their own connection (RFC 9110 §7.6.1),
the endpoint key never reaches the service, and the service learns who asked (`X-Forwarded-*`).
Raw ASGI header lists (lower-case byte names) in and out, for a lean per-request path."""

from __future__ import annotations

from collections.abc import Iterable

RawHeaders = list[tuple[bytes, bytes]]

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
KEY_HEADER = b"x-dumont-key"
# Set by httpx from the upstream URL; the client's goes on as X-Forwarded-Host.
_HOST = b"host"
_FORWARDED = frozenset({b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host"})


def _connection_tokens(headers: Iterable[tuple[bytes, bytes]]) -> set[bytes]:
    """The names `Connection` lists: hop-by-hop for this message too."""
    tokens: set[bytes] = set()
    for name, value in headers:
        if name == b"connection":
            tokens.update(t.strip().lower() for t in value.split(b",") if t.strip())
    return tokens


def _is_hop(name: bytes, listed: set[bytes]) -> bool:
    return name in HOP_BY_HOP or name in listed or name.startswith(b"proxy-")


def upstream_request_headers(
    headers: RawHeaders,
    *,
    client_ip: str | None,
    scheme: str,
    drop_authorization: bool,
) -> RawHeaders:
    """What the service receives: the client's headers without the hop-by-hop ones, the
    endpoint key (and the Authorization that carried it), with X-Forwarded-For appended to
    and X-Forwarded-Proto / -Host set."""
    listed = _connection_tokens(headers) if any(n == b"connection" for n, _ in headers) else set()
    out: RawHeaders = []
    forwarded_for: bytes | None = None
    host: bytes | None = None
    for name, value in headers:
        if _is_hop(name, listed) or name == KEY_HEADER:
            continue
        if name == _HOST:
            host = value
            continue
        if name in _FORWARDED:
            if name == b"x-forwarded-for":
                forwarded_for = value if forwarded_for is None else forwarded_for + b", " + value
            continue
        if name == b"authorization" and drop_authorization:
            continue
        out.append((name, value))
    if client_ip:
        ip = client_ip.encode()
        # uvicorn's proxy-headers support may already have put the client's address last.
        if forwarded_for is None:
            forwarded_for = ip
        elif forwarded_for.rsplit(b",", 1)[-1].strip() != ip:
            forwarded_for = forwarded_for + b", " + ip
    if forwarded_for is not None:
        out.append((b"x-forwarded-for", forwarded_for))
    out.append((b"x-forwarded-proto", b"https" if scheme in ("https", "wss") else b"http"))
    if host is not None:
        out.append((b"x-forwarded-host", host))
    return out


# The server in front (uvicorn) always sends its own; two of each would confuse clients. nginx
# hides the service's the same way.
_OWN = frozenset({b"date", b"server"})


def downstream_response_headers(headers: Iterable[tuple[bytes, bytes]]) -> RawHeaders:
    """What the client receives of the service's answer: all but the hop-by-hop headers (the
    body is re-framed for the client's own connection) and `Date` / `Server`."""
    raw = [(name.lower(), value) for name, value in headers]
    listed = _connection_tokens(raw) if any(n == b"connection" for n, _ in raw) else set()
    return [(n, v) for n, v in raw if not (_is_hop(n, listed) or n in _OWN)]


def header(headers: RawHeaders, name: bytes) -> bytes | None:
    for key, value in headers:
        if key == name:
            return value
    return None

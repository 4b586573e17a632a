"""The gateway's pure parts: which headers travel, which path the service sees, which key gets
in, and that traffic reaches the workflow per interval, never per request."""

from __future__ import annotations

import asyncio

from api.gateway.auth import check_key
from api.gateway.headers import downstream_response_headers, upstream_request_headers
from api.gateway.target import parse_target
from api.gateway.traffic import Traffic
from core.contracts.serverless import TrafficReport
from core.serverless.keys import hash_endpoint_key


def test_hop_by_hop_headers_stay_on_their_connection() -> None:
    sent = [
        (b"host", b"gw.example.com"),
        (b"connection", b"keep-alive, x-secret-hop"),
        (b"x-secret-hop", b"1"),
        (b"keep-alive", b"timeout=5"),
        (b"te", b"trailers"),
        (b"trailer", b"x"),
        (b"transfer-encoding", b"chunked"),
        (b"upgrade", b"h2c"),
        (b"proxy-authorization", b"Basic x"),
        (b"x-dumont-key", b"dsk_secret"),
        (b"x-forwarded-for", b"198.51.100.1"),
        (b"accept", b"text/event-stream"),
    ]
    out = upstream_request_headers(
        sent, client_ip="203.0.113.5", scheme="https", drop_authorization=False
    )
    assert out == [
        (b"accept", b"text/event-stream"),
        (b"x-forwarded-for", b"198.51.100.1, 203.0.113.5"),
        (b"x-forwarded-proto", b"https"),
        (b"x-forwarded-host", b"gw.example.com"),
    ]
    answer = [(b"Content-Type", b"text/plain"), (b"Connection", b"close, X-A"), (b"X-A", b"1")]
    assert downstream_response_headers(answer) == [(b"content-type", b"text/plain")]
    # The server in front sends its own Date and Server: the client sees one of each.
    stamped = [(b"Date", b"Thu, 03 Dec 2026 15:51:42 GMT"), (b"Server", b"BaseHTTP/0.6")]
    assert downstream_response_headers(stamped) == []


def test_the_key_in_either_header_and_the_services_own_authorization() -> None:
    key = "dsk_the-key"
    stored = hash_endpoint_key(key)
    assert check_key([(b"x-dumont-key", key.encode())], stored).ok
    bearer = check_key([(b"authorization", f"Bearer {key}".encode())], stored)
    assert bearer.ok and bearer.drop_authorization
    both = check_key(
        [(b"x-dumont-key", key.encode()), (b"authorization", b"Bearer sk-own")], stored
    )
    assert both.ok and not both.drop_authorization
    for headers in ([], [(b"authorization", b"Bearer sk-own")], [(b"x-dumont-key", b"dsk_x")]):
        assert not check_key(headers, stored).ok


def test_the_path_the_service_sees() -> None:
    def target(path: str, raw: bytes | None = None, query: bytes = b"") -> tuple[str, str, str]:
        scope = {"path": path, "raw_path": raw, "query_string": query, "root_path": ""}
        found = parse_target(scope)
        assert found is not None
        return found.machine_id, found.path, found.path_qs

    assert target("/serverless/m-1") == ("m-1", "/", "/")
    assert target("/serverless/m-1/") == ("m-1", "/", "/")
    assert target("/serverless/m-1/v1/chat", query=b"a=1") == ("m-1", "/v1/chat", "/v1/chat?a=1")
    assert target("/serverless/m-1/a/b", b"/serverless/m-1/a%2Fb") == ("m-1", "/a/b", "/a%2Fb")
    assert parse_target({"path": "/serverless/", "query_string": b""}) is None
    assert parse_target({"path": "/serverlessx/m-1", "query_string": b""}) is None


async def test_traffic_is_reported_per_interval_never_per_request() -> None:
    reports: asyncio.Queue[TrafficReport] = asyncio.Queue()

    async def send(machine_id: str, report: TrafficReport) -> None:
        await reports.put(report)

    async def write(machine_id: str, at: object) -> None:
        return None

    traffic = Traffic(gateway_id="gw-test", interval=0.2, send=send, write_last_request=write)
    runner = asyncio.create_task(traffic.run())
    try:
        traffic.opened("m-1")  # the leading edge: told at once, the request not delayed
        first = await reports.get()
        assert (first.open_requests, first.requests, first.gateway_id) == (1, 1, "gw-test")
        for _ in range(200):
            traffic.opened("m-1")
            traffic.closed("m-1")
        batch = await reports.get()  # one report for all two hundred
        assert (batch.open_requests, batch.requests) == (1, 200)
        again = await reports.get()  # still open: told again within its lease
        assert (again.open_requests, again.requests) == (1, 0)
        assert again.lease_seconds >= 3 * 0.2
        traffic.closed("m-1")
        last = await reports.get()
        assert (last.open_requests, last.requests) == (0, 0)
        assert last.last_request_at is not None and last.last_request_at >= batch.at
    finally:
        runner.cancel()
    assert reports.empty()

"""The HTTP service the gateway tests run on their sim machines (standard library only: it runs
on the machine's own Python). `python3 service.py PORT`.

- `/health`: 200 `ok`; `/never-ready`: 503 (a readiness path that never passes)
- `/stream?n=N&every=S`: a chunked answer, `tick i` every S seconds
- `/gated`: a chunked answer, `first` at once and `rest` only after a request to `/open-gate`
  (streaming proven without timing: buffered, `first` would never arrive first)
- `/upload` (POST, chunked): counts the body as it arrives; `/received` says how much so far
- anything else: the request echoed back as JSON (method, path, headers, body, instance)
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

GATE = threading.Event()
RECEIVED = [0]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        return

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _start_chunked(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                RECEIVED[0] += size
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if url.path == "/health":
            self._send(200, b"ok", "text/plain")
        elif url.path == "/never-ready":
            self._send(503, b"not ready", "text/plain")
        elif url.path == "/stream":
            self._start_chunked()
            for i in range(int(query.get("n", ["3"])[0])):
                self._chunk(f"tick {i}\n".encode())
                time.sleep(float(query.get("every", ["0.5"])[0]))
            self._chunk(b"")
        elif url.path == "/gated":
            GATE.clear()
            self._start_chunked()
            self._chunk(b"first\n")
            GATE.wait(60)
            self._chunk(b"rest\n")
            self._chunk(b"")
        elif url.path == "/open-gate":
            GATE.set()
            self._send(200, b"open", "text/plain")
        elif url.path == "/received":
            self._send(200, str(RECEIVED[0]).encode(), "text/plain")
        else:
            body = self._body()
            echo = {
                "method": self.command,
                "path": self.path,
                "headers": [[k.lower(), v] for k, v in self.headers.items()],
                "body": body.decode(errors="replace"),
                "instance": os.environ.get("CONTAINER_ID", ""),
            }
            self._send(200, json.dumps(echo).encode())

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle


if __name__ == "__main__":
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer(("0.0.0.0", int(sys.argv[1])), Handler).serve_forever()

"""A real HTTP server standing in for the API's `POST /api/agent/status`: it records what the
agent sends and answers what the test tells it to. It can go down and come back on its port."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    path: str
    authorization: str | None
    body: Any

    @property
    def reports(self) -> list[dict[str, Any]]:
        """The reports in the body: a batch's samples, or the one report."""
        if isinstance(self.body, dict) and "samples" in self.body:
            return list(self.body["samples"])
        return [self.body]


class RecordingServer:
    def __init__(self) -> None:
        self.received: list[Received] = []  # accepted requests (answered 200)
        self.attempts = 0  # every request, answered whatever
        self.status = 200  # what the next requests are answered
        self.retry_after: str | None = None
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def reports(self) -> list[dict[str, Any]]:
        with self._lock:
            return [report for request in self.received for report in request.reports]

    def start(self) -> None:
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with recorder._lock:
                    recorder.attempts += 1
                    status = recorder.status
                    if status == 200:
                        recorder.received.append(
                            Received(self.path, self.headers.get("Authorization"), json.loads(raw))
                        )
                answer = json.dumps({"success": status == 200}).encode()
                self.send_response(status)
                if recorder.retry_after is not None:
                    self.send_header("Retry-After", recorder.retry_after)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Down: connections are refused until `start()` again (same port)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None

"""A recording, fault-injecting HTTP proxy on 127.0.0.1 in front of the real registry.

Every request is forwarded unchanged (the Host header too, so the registry's Location
headers point back at the proxy) and written down: method, path, bytes of request body,
status. Tests read the log to prove what a command sent, e.g. that promote uploads no blob.

Faults are injected on the requests whose path contains a pattern, a given number of times:
an error status (500, or 429 with Retry-After), a hang (no answer), or a connection closed
halfway through the body.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"}


@dataclass(frozen=True)
class Exchange:
    method: str
    path: str
    sent: int  # bytes of request body
    status: int


@dataclass
class Fault:
    match: str  # a substring of the request path
    kind: str  # "500", "429", "hang" or "cut"
    times: int = 1  # how many matching requests get it; -1: all
    method: str = "GET"
    seconds: float = 1.0  # Retry-After of a 429; how long a hang lasts

    def take(self, method: str, path: str) -> bool:
        if self.times == 0 or method != self.method or self.match not in path:
            return False
        self.times -= 1 if self.times > 0 else 0
        return True


class RecordingProxy:
    def __init__(self, upstream: str, faults: list[Fault] | None = None) -> None:
        self.upstream = upstream  # host:port
        self.log: list[Exchange] = []
        self.faults = list(faults or [])
        self.injected: list[tuple[str, str]] = []  # (fault kind, path)
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    out = bytearray()
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            self.rfile.readline()
                            return bytes(out)
                        out += self.rfile.read(size)
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _fault(self, kind: str, fault: Fault) -> bool:
                """Answer with the fault; True when the request is done with."""
                if kind in ("500", "429"):
                    self.send_response(int(kind))
                    if kind == "429":
                        self.send_header("Retry-After", str(int(fault.seconds)))
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return True
                if kind == "hang":
                    time.sleep(fault.seconds)
                    self.close_connection = True
                    return True
                return False  # "cut" is applied to the upstream's answer

            def _forward(self) -> None:
                body = self._body()
                fault = proxy._fault_for(self.command, self.path)
                if fault is not None and self._fault(fault.kind, fault):
                    proxy._record(Exchange(self.command, self.path, len(body), -1))
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                if body or self.command in ("PUT", "POST", "PATCH"):
                    headers["Content-Length"] = str(len(body))
                conn = http.client.HTTPConnection(proxy.upstream, timeout=60)
                try:
                    conn.request(self.command, self.path, body=body or None, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                finally:
                    conn.close()
                proxy._record(Exchange(self.command, self.path, len(body), resp.status))
                self.send_response(resp.status)
                for key, value in resp.getheaders():
                    if key.lower() not in HOP_BY_HOP and key.lower() != "content-length":
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if fault is not None and fault.kind == "cut":
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _fault_for(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.take(method, path):
                    self.injected.append((fault.kind, path))
                    return fault
        return None

    def _record(self, exchange: Exchange) -> None:
        with self._lock:
            self.log.append(exchange)

    def __enter__(self) -> RecordingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

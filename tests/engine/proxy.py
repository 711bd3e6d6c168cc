"""A recording, fault-injecting HTTP proxy on 127.0.0.1 in front of the real registry.

Every request is forwarded unchanged (the Host header too, so the registry's Location
headers point back at the proxy) and written down: method, path, bytes of request body,
status. Tests read the log to prove what a command sent, e.g. that promote uploads no blob.

Faults are injected on the requests whose path contains a pattern, a given number of times:
an error status (500, or 429 with Retry-After), a hang (no answer), or a connection closed
halfway through the body.

A bandwidth limit (``rate``, bytes per second) paces the response bodies sent to clients
by one token bucket that every connection draws from, like one slow link: six downloads
at once share it. Bodies are then streamed from the registry in chunks as they are paced.
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
CHUNK = 64 * 1024  # bytes of a body read and sent at a time under a bandwidth limit


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


class TokenBucket:
    """``rate`` bytes per second, shared by every caller; at most ``burst`` bytes at once
    after an idle spell. A caller takes its bytes at once, running into debt, and sleeps
    until the debt is paid: callers are served in the order they asked, and together they
    never get more than the rate (plus the burst)."""

    def __init__(self, rate: float, burst: float = CHUNK) -> None:
        if rate <= 0:
            raise ValueError(f"a bandwidth limit must be positive, not {rate}")
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._stamp = time.monotonic()
        self._lock = threading.Lock()

    def take(self, size: int) -> None:
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate) - size
            self._stamp = now
            wait = -self._tokens / self.rate
        if wait > 0:
            time.sleep(wait)


class RecordingProxy:
    def __init__(self, upstream: str, faults: list[Fault] | None = None, *, rate: float | None = None) -> None:
        self.upstream = upstream  # host:port
        self.log: list[Exchange] = []
        self.faults = list(faults or [])
        #: Bytes per second of every response body together; None: as fast as it goes.
        self.rate = rate
        self._bucket = TokenBucket(rate) if rate is not None else None
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

            def _write(self, data: bytes) -> None:
                """Send body bytes, paced by the bandwidth limit if there is one."""
                if proxy._bucket is None:
                    self.wfile.write(data)
                    return
                for start in range(0, len(data), CHUNK):
                    piece = data[start : start + CHUNK]
                    proxy._bucket.take(len(piece))
                    self.wfile.write(piece)

            def _stream(self, resp: http.client.HTTPResponse, length: int) -> None:
                """Copy ``length`` bytes of body from the registry, a chunk at a time."""
                left = length
                try:
                    while left > 0:
                        piece = resp.read(min(CHUNK, left))
                        if not piece:
                            break
                        left -= len(piece)
                        self._write(piece)
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client went away: nothing left to send it
                if left > 0:  # short of what Content-Length promised: the client must see the end
                    self.close_connection = True

            def _forward(self) -> None:
                body = self._body()
                fault = proxy._fault_for(self.command, self.path)
                if fault is not None and self._fault(fault.kind, fault):
                    proxy._record(Exchange(self.command, self.path, len(body), -1))
                    return
                # A header sent more than once (the engine sends an Accept per media type) is
                # forwarded as one, its values joined by commas, as HTTP allows.
                headers: dict[str, str] = {}
                seen: set[str] = set()
                for key in self.headers:  # every header line's name, repeats too
                    if key.lower() not in HOP_BY_HOP and key.lower() not in seen:
                        seen.add(key.lower())
                        headers[key] = ", ".join(self.headers.get_all(key) or [])
                if body or self.command in ("PUT", "POST", "PATCH"):
                    headers["Content-Length"] = str(len(body))
                conn = http.client.HTTPConnection(proxy.upstream, timeout=60)
                try:
                    conn.request(self.command, self.path, body=body or None, headers=headers)
                    resp = conn.getresponse()
                    length = resp.getheader("Content-Length", "")
                    cut = fault is not None and fault.kind == "cut"
                    # Under a bandwidth limit a body of known length is streamed as it is paced;
                    # otherwise (and for a cut, which needs the whole to send half) read whole.
                    stream = proxy._bucket is not None and self.command != "HEAD" and not cut and length.isdigit()
                    data = b"" if stream else resp.read()
                    proxy._record(Exchange(self.command, self.path, len(body), resp.status))
                    self.send_response(resp.status)
                    for key, value in resp.getheaders():
                        if key.lower() not in HOP_BY_HOP and key.lower() != "content-length":
                            self.send_header(key, value)
                    self.send_header("Content-Length", length if stream else str(len(data)))
                    self.end_headers()
                    if cut:
                        self._write(data[: len(data) // 2])
                        self.wfile.flush()
                        self.close_connection = True
                        self.connection.shutdown(socket.SHUT_RDWR)
                        return
                    if self.command == "HEAD":
                        return
                    if stream:
                        self._stream(resp, int(length))
                    else:
                        self._write(data)
                finally:
                    conn.close()

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        #: host:port of the proxy: an image through it is ``f"{proxy.address}/repo:tag"``.
        self.port: int = self.server.server_address[1]
        self.address = f"127.0.0.1:{self.port}"
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

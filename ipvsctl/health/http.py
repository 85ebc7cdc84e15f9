"""HTTP_GET and SSL_GET: one GET of one url, as keepalived 2.2.7 sends it.

The request is keepalived's template: `GET path HTTP/1.0|1.1`, `User-Agent: KeepAliveClient`,
`Connection: close` for http_protocol 1.0C and 1.1, and `Host:` the url's virtualhost
(else the checker's, the real server's, the virtual server's), else `ip:port` of the
target. The response passes when its status is in the url's status_code set (default
200-299) and, with `digest`, when the MD5 of the body (up to Content-Length; no chunked
decoding, as genhash) is the one given.

Timeouts, all `connect_timeout`: name resolution, connect and the TLS handshake share one
budget (keepalived's handshake uses what is left of the connect timer); then every read may
wait that long for data (keepalived's per-read timer), and the whole response is capped at
READ_CAP times it, so a server that trickles a byte now and then cannot hold a check forever.

SSL_GET does not verify the server's certificate, as keepalived does not (it never sets
SSL_VERIFY_PEER): the check is about the service answering, not about trust.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
import ssl
from dataclasses import dataclass

from ipvsctl.health.config import HttpGet, ResolvedCheck, SslGet, Url
from ipvsctl.health.conn import Attempt, Endpoint, OnDone, run_attempt
from ipvsctl.health.state import Outcome

HEAD_MAX = 16384  # bytes of status line and headers we wait for before giving up
READ_CAP = 4  # the whole response must arrive within READ_CAP * connect_timeout
RECV_SIZE = 65536

_context: ssl.SSLContext | None = None


def client_context() -> ssl.SSLContext:
    """One TLS client context for every SSL_GET: no certificate check (see the docstring)."""
    global _context
    if _context is None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        _context = ctx
    return _context


def request_bytes(path: str, host: str, protocol: str) -> bytes:
    minor = 1 if protocol == "1.1" else 0
    close = "Connection: close\r\n" if protocol in ("1.0C", "1.1") else ""
    return (f"GET {path} HTTP/1.{minor}\r\nUser-Agent: KeepAliveClient\r\n{close}"
            f"Host: {host}\r\n\r\n").encode()


@dataclass(frozen=True)
class HttpPlan(Endpoint):
    """What one HTTP_GET / SSL_GET needs at each run, computed once: where it connects,
    and what it asks."""

    urls: tuple[Url, ...]
    requests: tuple[bytes, ...]
    tls: bool
    sni: str | None

    @staticmethod
    def of(check: ResolvedCheck) -> HttpPlan:
        c = check.checker
        if not isinstance(c, HttpGet) or check.target is None:
            raise ValueError(f"not an HTTP_GET / SSL_GET: {check}")
        t = check.target
        literal = f"[{t.host}]:{t.port}" if ":" in t.host else f"{t.host}:{t.port}"
        requests = tuple(request_bytes(u.path, vhost or literal, c.http_protocol)
                         for u, vhost in zip(c.urls, check.hosts, strict=True))
        return HttpPlan.at(check, urls=c.urls, requests=requests, tls=isinstance(c, SslGet),
                           sni=check.sni)


class _HttpAttempt(Attempt):
    def __init__(self, loop: asyncio.AbstractEventLoop, plan: HttpPlan, url: int,
                 on_done: OnDone) -> None:
        super().__init__(loop, plan, on_done)
        if plan.tls:
            self.socket_class = socket.socket
        self.plan = plan
        self.url = plan.urls[url]
        self.pending = plan.requests[url]
        self.head: bytearray | None = bytearray()  # None once the headers are in
        self.status = 0
        self.status_line = b""
        self.length: int | None = None  # Content-Length
        self.body = 0
        self.md5 = hashlib.md5() if self.url.digest else None
        self.last = self.read_start = 0.0

    @property
    def get(self) -> str:
        return f"GET {self.url.path}"

    def connecting(self) -> None:
        if self.plan.tls:
            super().connecting()  # the handshake needs the connection
        else:
            self._send()  # usually connected already; else send() says EAGAIN

    # -- TLS

    def connected(self) -> None:
        self.phase = "TLS handshake"
        assert isinstance(self.sock, socket.socket)
        try:
            self.sock = client_context().wrap_socket(
                self.sock, server_hostname=self.plan.sni, do_handshake_on_connect=False)
        except (ssl.SSLError, OSError, ValueError) as err:
            self.finish(False, f"TLS setup for {self.where} failed: {err}")
            return
        self._handshake()

    def _handshake(self) -> None:
        assert isinstance(self.sock, ssl.SSLSocket)
        try:
            self.sock.do_handshake()
        except ssl.SSLWantReadError:
            self.poller.watch(self, False, self._handshake)
            return
        except ssl.SSLWantWriteError:
            self.poller.watch(self, True, self._handshake)
            return
        except ssl.SSLError as err:
            self.finish(False, f"TLS handshake with {self.where} failed: {err.reason or err}")
            return
        except OSError as err:
            self.finish(False, f"TLS handshake with {self.where} failed: "
                               f"{err.strerror or 'connection closed'}")
            return
        self._send()

    # -- request and response

    def _send(self) -> None:
        sock = self.sock
        assert sock is not None
        try:
            n = sock.send(self.pending)
        except (BlockingIOError, InterruptedError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
            n = 0
        except OSError as err:
            if self.phase == "connect":  # the pending connect error, as send() reports it
                self.connect_failed(sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                                    or err.errno or 0)
            else:
                self.finish(False, f"{self.get}: cannot send to {self.where}: "
                                   f"{err.strerror or err}")
            return
        self.pending = self.pending[n:]
        if self.pending:
            self.poller.watch(self, True, self._send)
            return
        self.phase = "read"
        self.last = self.read_start = self.loop.time()
        self.poller.watch(self, False, self._on_read)

    def _on_read(self) -> None:
        sock = self.sock
        assert sock is not None
        while True:
            try:
                data = sock.recv(RECV_SIZE)
            except (BlockingIOError, InterruptedError, ssl.SSLWantReadError,
                    ssl.SSLWantWriteError):
                return
            except ssl.SSLZeroReturnError:
                data = b""
            except OSError as err:
                self.finish(False, f"{self.get}: read from {self.where} failed: "
                                   f"{err.strerror or err}")
                return
            if not data:
                self._complete()
                return
            if self._feed(data):
                return
            self.last = self.loop.time()  # more to come: the idle timer restarts
            if not self.plan.tls:
                return  # plain sockets: one recv per wake-up; TLS may hold decrypted data

    def _feed(self, data: bytes) -> bool:
        """Take response bytes; True when the check is over."""
        if self.head is not None:
            buf = bytes(self.head + data) if self.head else data  # usually one chunk
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.head += data
                if len(self.head) > HEAD_MAX:
                    self.finish(False, f"{self.get}: no end of the HTTP headers in the first "
                                       f"{HEAD_MAX} bytes")
                    return True
                return False
            self._parse_head(buf[:end])
            data = buf[end + 4:]
            self.head = None
        if data:
            if self.md5 is not None:
                room = len(data) if self.length is None else self.length - self.body
                if room > 0:
                    self.md5.update(data if room >= len(data) else data[:room])
            self.body += len(data)
        if self.length is not None and self.body >= self.length:
            self._complete()  # no need to wait for the close
            return True
        return False

    def _parse_head(self, head: bytes) -> None:
        line, _, rest = head.partition(b"\r\n")
        self.status_line = line
        parts = line.split(None, 2)
        if len(parts) >= 2 and parts[0].startswith(b"HTTP/") and len(parts[1]) == 3 \
                and parts[1].isdigit():
            self.status = int(parts[1])
        at = rest.lower().find(b"content-length:")
        if at >= 0 and (at == 0 or rest[at - 1:at] == b"\n"):
            value = rest[at + 15:].split(b"\r\n", 1)[0].strip()
            if value.isdigit():
                self.length = int(value)

    def _complete(self) -> None:
        url = self.url
        if self.head is not None:
            got = f" after {len(self.head)} bytes" if self.head else ""
            self.finish(False, f"{self.get}: no HTTP response from {self.where} (connection "
                               f"closed{got})")
        elif not self.status:
            line = self.status_line[:60].decode("latin-1")
            self.finish(False, f"{self.get}: bad HTTP status line {line!r}")
        elif not url.accepts(self.status):
            self.finish(False, f"HTTP status {self.status} on {self.get}")
        elif self.md5 is not None and self.md5.hexdigest() != url.digest:
            self.finish(False, f"MD5 digest mismatch on {self.get}: got "
                               f"{self.md5.hexdigest()}, expected {url.digest}")
        else:
            extra = ", MD5 digest ok" if self.md5 is not None else ""
            self.finish(True, f"HTTP status {self.status} on {self.get}{extra}")

    def phase_deadline(self) -> float:
        if self.phase != "read":
            return self.deadline
        return min(self.last + self.timeout, self.read_start + READ_CAP * self.timeout)

    def on_timeout(self, now: float) -> None:
        if self.phase != "read":
            super().on_timeout(now)
        elif now >= self.read_start + READ_CAP * self.timeout:
            self.finish(False, f"{self.get}: response from {self.where} not complete after "
                               f"{READ_CAP * self.timeout:g} s")
        else:
            self.finish(False, f"{self.get}: read timeout after {self.timeout:g} s "
                               f"({self.where})")


def start_http(plan: HttpPlan, url: int, on_done: OnDone,
               loop: asyncio.AbstractEventLoop | None = None) -> Attempt:
    """Start one GET of url number `url`; `on_done` gets its Outcome, exactly once."""
    return _HttpAttempt(loop or asyncio.get_running_loop(), plan, url, on_done).start()


async def http_check(check: ResolvedCheck, url: int = 0) -> Outcome:
    plan = HttpPlan.of(check)
    return await run_attempt(lambda done: start_http(plan, url, done))

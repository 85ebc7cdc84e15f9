"""One check connection, driven by callbacks on a non-blocking socket.

Why not asyncio streams: a thousand checks a second must cost under a quarter of a core
(bench/healthcheck). In a first loopback micro-benchmark on this project's 2-vCPU host
(GETs to nginx, 100 at a time), a GET cost about 400 µs of CPU over asyncio streams,
310 µs over `loop.sock_*` coroutines and 165 µs over `add_reader`/`add_writer` callbacks.
So a check is a small object, not a task, and:

* every check socket sits in one epoll set (`Poller`) and the event loop watches only that
  set's descriptor: no per-check selector keys, handles or futures;
* a plain GET is sent right after connect(): on a near server the handshake is usually
  done by then; if not, send() says EAGAIN and we wait for the socket to be writable;
* one timer per check, re-armed only if it fires before the phase's real deadline;
* the check ends in exactly one call of `on_done(Outcome)`. Nothing raises out of it (a
  bug becomes an "internal error" outcome); `cancel()` closes the socket silently.
"""

from __future__ import annotations

import _socket
import asyncio
import errno
import logging
import os
import select
import socket
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv6Address, ip_address
from typing import Any, Self

from ipvsctl.health.config import ResolvedCheck
from ipvsctl.health.state import Outcome

log = logging.getLogger("ipvsctl.health")

SockAddr = tuple[str, int] | tuple[str, int, int, int]
OnDone = Callable[[Outcome], None]
_SOCK_TYPE = socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC


def sockaddr_of(host: str, port: int) -> tuple[int, SockAddr] | None:
    """(family, sockaddr) for an address literal; None for a name."""
    try:
        ip = ip_address(host)
    except ValueError:
        return None
    if isinstance(ip, IPv6Address):
        return socket.AF_INET6, (ip.compressed, port, 0, 0)
    return socket.AF_INET, (ip.compressed, port)


def is_reserved_name(host: str) -> bool:
    """RFC 6761 §6.4: resolvers SHOULD answer names under .invalid negatively at once, so
    no query leaves the host for them (glibc would ask the configured DNS server)."""
    return host.rstrip(".").lower().rsplit(".", 1)[-1] == "invalid"


def strerror(err: int) -> str:
    return os.strerror(err) if err else "error"


class Poller:
    """One epoll set for every check socket of a loop; the loop watches its descriptor.

    Level-triggered. A closed socket leaves the set by itself (the kernel drops a closed
    file from every epoll set), so `drop()` only forgets our callback.
    """

    _of_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Poller] = \
        weakref.WeakKeyDictionary()

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> Poller:
        p = cls._of_loop.get(loop)
        if p is None:
            p = cls._of_loop[loop] = Poller(loop)
        return p

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._ep = select.epoll()
        self._cbs: dict[int, tuple[Attempt, Callable[[], None]]] = {}
        loop.add_reader(self._ep.fileno(), self._ready)
        weakref.finalize(self, self._ep.close)

    def watch(self, attempt: Attempt, write: bool, cb: Callable[[], None]) -> None:
        fd = attempt.fd
        ev = select.EPOLLOUT if write else select.EPOLLIN
        if fd in self._cbs:
            self._ep.modify(fd, ev)
        else:
            self._ep.register(fd, ev)
        self._cbs[fd] = (attempt, cb)

    def drop(self, fd: int) -> None:
        """The caller closes `fd` right after: the kernel takes it out of the set."""
        self._cbs.pop(fd, None)

    def _ready(self) -> None:
        for fd, _ev in self._ep.poll(0):
            entry = self._cbs.get(fd)
            if entry is None:
                continue
            attempt, cb = entry
            try:
                cb()
            except Exception as err:  # a bug: end this check, keep the others going
                log.exception("health check %s failed internally", attempt.where)
                attempt.finish(False, f"internal error: {err!r}")


@dataclass(frozen=True)
class Endpoint:
    """Where a check connects, computed once from its config: the part of a check's plan
    that every connecting checker (TCP_CHECK, HTTP_GET, SSL_GET) has."""

    host: str
    port: int
    addr: tuple[int, SockAddr] | None  # None: a name, resolved at each check
    bind: tuple[str, int] | None
    timeout: float

    @classmethod
    def at(cls, check: ResolvedCheck, **rest: Any) -> Self:
        """Where a connecting check connects; `rest`: a subclass's own fields."""
        assert check.target is not None
        t = check.target
        return cls(t.host, t.port, sockaddr_of(t.host, t.port), check.bind,
                   check.connect_timeout, **rest)


class Attempt:
    """A connection attempt; subclasses carry on from `connecting()`/`connected()`."""

    phase = "connect"
    # The C socket type: socket.socket's Python layer costs ~10 µs a check and buys nothing
    # here (no makefile, no timeouts). TLS needs socket.socket for ssl's wrap_socket().
    socket_class: type[_socket.socket] = _socket.socket

    def __init__(self, loop: asyncio.AbstractEventLoop, end: Endpoint, on_done: OnDone) -> None:
        self.loop = loop
        self.poller = Poller.of(loop)
        self.host = end.host
        self.port = end.port
        self.bind = end.bind
        self.timeout = end.timeout
        self.on_done = on_done
        self.sock: _socket.socket | None = None
        self.fd = -1
        self.done = False
        self.deadline = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._addr = end.addr
        self._resolving: asyncio.Future[Any] | None = None

    def start(self) -> Attempt:
        self.deadline = self.loop.time() + self.timeout
        self._timer = self.loop.call_at(self.deadline, self._on_timer)
        if self._addr is not None:
            self._connect(*self._addr)
        elif is_reserved_name(self.host):
            self.finish(False, f"cannot resolve {self.host}: reserved name (RFC 6761)")
        else:  # names only: the loop's resolver (a shared thread pool), never per check
            self._resolving = asyncio.ensure_future(self.loop.getaddrinfo(
                self.host, self.port, type=socket.SOCK_STREAM), loop=self.loop)
            self._resolving.add_done_callback(self._resolved)
        return self

    def cancel(self) -> None:
        """Stop without an outcome (the scheduler is stopping)."""
        self.done = True
        self._cleanup()

    # -- connecting

    def _resolved(self, task: asyncio.Future[list[tuple[Any, ...]]]) -> None:
        if self.done or task.cancelled():
            return
        exc = task.exception()
        if exc is not None or not task.result():
            why = getattr(exc, "strerror", None) or str(exc) or "no address"
            self.finish(False, f"cannot resolve {self.host}: {why}")
            return
        family, _type, _proto, _name, sockaddr = task.result()[0]
        self._connect(family, sockaddr)

    def _connect(self, family: int, sockaddr: SockAddr) -> None:
        try:
            sock = self.socket_class(family, _SOCK_TYPE)
        except OSError as err:  # EMFILE and friends: our side, not the server's
            self.finish(False, f"cannot create a socket: {err.strerror}", local=True)
            return
        self.sock, self.fd = sock, sock.fileno()
        if self.bind is not None:
            try:
                if self.bind[1]:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind(self.bind)
            except OSError as err:
                self.finish(False, f"cannot bind to [{self.bind[0] or '*'}]:{self.bind[1]}: "
                                   f"{err.strerror}", local=True)
                return
            except (TypeError, ValueError, OverflowError) as err:  # a family mismatch
                self.finish(False, f"cannot bind to {self.bind}: {err}", local=True)
                return
        rc = sock.connect_ex(sockaddr)
        if rc in (0, errno.EINPROGRESS):
            self.connecting()
        else:
            self.connect_failed(rc)

    def connecting(self) -> None:
        """connect() is under way (or done); by default, wait until it is writable."""
        self.poller.watch(self, True, self._on_writable)

    def _on_writable(self) -> None:
        assert self.sock is not None
        err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self.connect_failed(err)
            return
        try:  # writable and no error, yet not connected: a stale wake-up (a reused fd)
            self.sock.getpeername()
        except OSError as exc:
            if exc.errno != errno.ENOTCONN:
                self.connect_failed(exc.errno or 0)
            return
        self.connected()

    def connect_failed(self, err: int) -> None:
        self.finish(False, f"connect to {self.where}: {strerror(err)}")

    def connected(self) -> None:
        raise NotImplementedError

    # -- plumbing

    @property
    def where(self) -> str:
        return f"[{self.host}]:{self.port}"

    def phase_deadline(self) -> float:
        return self.deadline

    def _on_timer(self) -> None:
        self._timer = None
        if self.done:
            return
        now = self.loop.time()
        due = self.phase_deadline()
        if now < due:  # the phase moved on since the timer was set
            self._timer = self.loop.call_at(due, self._on_timer)
            return
        try:
            self.on_timeout(now)
        except Exception as err:
            log.exception("health check %s failed internally", self.where)
            self.finish(False, f"internal error: {err!r}")

    def on_timeout(self, now: float) -> None:
        self.finish(False, f"{self.phase} timeout after {self.timeout:g} s ({self.where})")

    def finish(self, ok: bool, reason: str, *, local: bool = False) -> None:
        if self.done:
            return
        self.done = True
        self._cleanup()
        self.on_done(Outcome(ok, reason, local=local))

    def _cleanup(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._resolving is not None:
            self._resolving.cancel()
        if self.sock is not None:
            self.poller.drop(self.fd)
            self.sock.close()
            self.sock = None


async def run_attempt(start: Callable[[OnDone], Attempt]) -> Outcome:
    """Await one check (for callers that want a coroutine, e.g. tests and one-off checks)."""
    fut: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()

    def done(out: Outcome) -> None:
        if not fut.done():
            fut.set_result(out)

    attempt = start(done)
    try:
        return await fut
    finally:
        attempt.cancel()

"""The only module that writes the kernel's IPVS table.

pyroute2 resolves the generic netlink family "IPVS" (and, with `netns=`, creates the socket
inside a named network namespace). The requests themselves go out on that netlink socket
as bytes from `ipvsctl.codec`, many per sendmsg(): the kernel's genl_rcv handles every
message of a datagram in order, inside that sendmsg(). Only the last one of a datagram
asks for an ack; the kernel reports a failed one without being asked (netlink_rcv_skb acks
on NLM_F_ACK *or* error), so a 10k-dest table costs a few dozen syscalls and reads back
only its errors, instead of 10k acks read one recv() each. pyroute2 0.9.7's socket classes
do one request per round trip through an asyncio transport, and its IPVS encoding is wrong
in places (see codec.py).
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from ipvsctl import codec
from ipvsctl.diff import Kind, Op
from ipvsctl.model import AF_INET, AF_INET6, Dest, Service, ServiceKey, Table, hostport

NETLINK_GENERIC = 16
SOL_NETLINK = 270
NETLINK_CAP_ACK = 10  # acks without the echoed request: they stay 36 bytes
SO_RCVBUFFORCE = 33
RECV_TIMEOUT = 30.0  # seconds; a lost ack must not hang the daemon
BATCH_BYTES = 64 * 1024  # well under the default 208 KiB netlink sndbuf
RECV_BYTES = 1 << 20  # one buffer for every recv: a dump datagram is at most 32 KiB
_ERRNO = struct.Struct("=i")  # nlmsgerr.error, first in an NLMSG_ERROR payload
_HDR = struct.Struct("=IHHII")  # nlmsghdr
T = TypeVar("T")
NO_IPVS = ("IPVS is not available in this kernel (no generic netlink family 'IPVS'): "
           "load it with 'modprobe ip_vs'")


class IpvsError(Exception):
    """A request the kernel refused; `errno` is the kernel's, the text says what it means."""

    def __init__(self, code: int, message: str, op: Op | None = None) -> None:
        super().__init__(message)
        self.errno = code
        self.op = op


class IpvsUnavailable(IpvsError):
    def __init__(self, detail: str = "") -> None:
        super().__init__(errno.ENOENT, NO_IPVS + (f" ({detail})" if detail else ""))


def explain(code: int, op: Op) -> str:
    """errno -> meaning, for the op that got it (the kernel reuses ENOENT for two things)."""
    svc = op.service
    what = str(svc.key)
    dest = f" -> {hostport(op.dest.addr, op.dest.port)}" if op.dest else ""
    if code == errno.EEXIST:
        return f"{what}{dest}: already exists"
    if code == errno.ESRCH:
        return f"{what}: no such service"
    if code == errno.ENOENT and op.kind in (Kind.ADD_SERVICE, Kind.EDIT_SERVICE):
        pe = f" or persistence engine '{svc.pe_name}' (ip_vs_pe_{svc.pe_name})" \
            if svc.pe_name else ""
        return (f"{what}: unknown scheduler '{svc.sched}'{pe}: the kernel has no module "
                f"ip_vs_{svc.sched}")
    if code == errno.ENOENT:
        return f"{what}{dest}: no such destination"
    if code == errno.ERANGE:
        d = op.dest
        detail = f" (weight {d.weight}, lthreshold {d.l_thresh}, uthreshold {d.u_thresh})" \
            if d else ""
        return f"{what}{dest}: out of range: weight < 0 or lthreshold > uthreshold{detail}"
    if code == errno.EINVAL:
        return f"{what}{dest}: invalid (the kernel refused the attributes; is 'lo' up?)"
    return f"{what}{dest}: {os.strerror(code)}"


_SERVICE_CMDS = {Kind.ADD_SERVICE: codec.NEW_SERVICE, Kind.EDIT_SERVICE: codec.SET_SERVICE,
                 Kind.DEL_SERVICE: codec.DEL_SERVICE}
_DEST_CMDS = {Kind.ADD_DEST: codec.NEW_DEST, Kind.EDIT_DEST: codec.SET_DEST,
              Kind.DEL_DEST: codec.DEL_DEST}


@dataclass(frozen=True)
class ApplyResult:
    done: int
    errors: tuple[IpvsError, ...]


def _family_id(netns: str | None) -> int:
    from pyroute2.netlink.exceptions import NetlinkError
    from pyroute2.netlink.generic import GenericNetlinkSocket
    from pyroute2.netlink.generic.ipvs import ipvsmsg

    # Family ids are global, so resolving from the root namespace serves any netns.
    gsock = GenericNetlinkSocket()
    try:
        gsock.bind("IPVS", ipvsmsg)
        return int(gsock.prid)
    except NetlinkError as err:
        if err.code == errno.ENOENT:
            raise IpvsUnavailable() from None
        raise
    finally:
        gsock.close()


class IpvsKernel:
    """Dump, apply (batched), timeouts, flush. One netlink socket, in `netns` if given."""

    def __init__(self, netns: str | None = None) -> None:
        self.family = _family_id(netns)
        if netns is None:
            self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_GENERIC)
        else:
            from pyroute2 import netns as pr_netns

            self.sock = pr_netns.create_socket(netns, socket.AF_NETLINK, socket.SOCK_RAW,
                                               NETLINK_GENERIC, flags=0)
        self.sock.bind((0, 0))
        self.sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)
        # Every ack of a batch is queued at once; a short buffer drops acks (ENOBUFS).
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 16 << 20)
        except PermissionError:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        self.sock.settimeout(RECV_TIMEOUT)
        self.seq = 1
        self._buf = bytearray(RECV_BYTES)
        self._view = memoryview(self._buf)
        self._memo = codec.DestMemo()

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> IpvsKernel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport --------------------------------------------------------------------

    def _next_seq(self) -> int:
        self.seq = (self.seq + 1) & 0xFFFFFFFF or 1
        return self.seq

    def _recv(self) -> memoryview:
        """One datagram, as a view of our buffer: valid until the next _recv.

        One buffer for the socket's life: `recv(1 MiB)` allocates and frees 1 MiB per call,
        which in the emulated guest cost ~4 ms of page faults per datagram."""
        try:
            size = self.sock.recv_into(self._buf)
        except TimeoutError:
            raise IpvsError(errno.ETIMEDOUT, "IPVS: no answer from the kernel") from None
        except OSError as err:
            if err.errno == errno.ENOBUFS:  # the kernel dropped replies: results unknown
                raise IpvsError(errno.ENOBUFS, "IPVS: replies lost (receive buffer "
                                "overrun); dump and diff again") from None
            raise
        return self._view[:size]

    def _transact(self, datagram: bytes, last: int) -> dict[int, int]:
        """Send requests whose last one (seq `last`) asks for an ack; return seq -> errno
        of every request that failed, once that ack (or its own error) is in."""
        self.sock.sendall(datagram)
        failed: dict[int, int] = {}
        while True:
            for kind, _flags, seq, payload in codec.iter_messages(self._recv()):
                if kind != codec.NLMSG_ERROR:
                    continue
                code = -_ERRNO.unpack_from(payload)[0]
                if code:
                    failed[seq] = code
                if seq == last:
                    return failed

    def _dump(self, cmd: int, attrs: bytes, decode: Callable[[memoryview], T]) -> list[T]:
        """A dump request; each reply is decoded as it comes (its bytes are reused).
        The walk is inlined: a full dump is ~1k of these, ~10k replies."""
        seq = self._next_seq()
        self.sock.sendall(codec.message(self.family, cmd, attrs, seq, codec.NLM_F_DUMP))
        out: list[T] = []
        unpack = _HDR.unpack_from
        while True:
            data = self._recv()
            off, end = 0, len(data)
            while off + 16 <= end:
                size, kind, _flags, mseq, _pid = unpack(data, off)
                if size < 16:
                    break
                if mseq == seq:
                    if kind == codec.NLMSG_DONE:
                        return out
                    if kind == codec.NLMSG_ERROR:
                        code = -_ERRNO.unpack_from(data, off + 16)[0]
                        if code == errno.ENOENT and not out:
                            raise IpvsUnavailable("dump")
                        raise IpvsError(code, f"IPVS dump: {os.strerror(code)}")
                    out.append(decode(data[off + 16:off + size]))
                off += (size + 3) & ~3

    def _request(self, cmd: int, attrs: bytes = b"") -> list[bytes]:
        """One doit request that answers with data (GET_INFO, GET_CONFIG)."""
        seq = self._next_seq()
        self.sock.sendall(codec.message(self.family, cmd, attrs, seq, codec.NLM_F_ACK))
        out: list[bytes] = []
        while True:
            for kind, _flags, mseq, payload in codec.iter_messages(self._recv()):
                if mseq != seq:
                    continue
                if kind == codec.NLMSG_ERROR:
                    code = -_ERRNO.unpack_from(payload)[0]
                    if code:
                        raise IpvsError(code, f"IPVS request {cmd}: {os.strerror(code)}")
                    return out
                out.append(bytes(payload))

    # -- reading ------------------------------------------------------------------------

    def info(self) -> tuple[int, int]:
        """(version as 0xMMmmpp, connection table size), as ipvsadm's first line shows."""
        attrs = codec.decode_top_u32(self._request(codec.GET_INFO)[0])
        return attrs.get(codec.I_VERSION, 0), attrs.get(codec.I_CONN_TAB_SIZE, 0)

    def services(self, stats: bool = True) -> list[Service]:
        return self._dump(codec.GET_SERVICE, b"", lambda p: codec.decode_service(p, stats))

    def dests(self, key: ServiceKey, stats: bool = True) -> list[Dest]:
        # A dump for a missing service is empty, not an error (kernel behaviour).
        af = key.af
        return self._dump(codec.GET_DEST, codec.service_nest(key),
                          lambda p: codec.decode_dest(p, af, stats))

    def dump(self, stats: bool = True) -> Table:
        """The whole table: one dump of the services, then one per service for its dests
        (the kernel has no other way: GET_DEST needs a service, and one netlink socket runs
        one dump at a time). `stats=False` (a resync) leaves the counters out, and reads
        the dests unchanged since the last such dump from a memo instead of decoding them.
        Several sockets on threads were tried: no faster, since decoding (under the GIL),
        not the kernel, is most of a dump."""
        services = self.services(stats)
        if stats:
            return Table.of([(svc, self.dests(svc.key)) for svc in services])
        memo = self._memo
        memo.next_dump()
        entries = []
        for svc in services:
            af = svc.key.af
            entries.append((svc, self._dump(codec.GET_DEST, codec.service_nest(svc.key),
                                            lambda p, af=af: memo.decode(p, af))))
        return Table.of(entries)

    def timeouts(self) -> tuple[int, int, int]:
        a = codec.decode_top_u32(self._request(codec.GET_CONFIG)[0])
        return (a.get(codec.A_TIMEOUT_TCP, 0), a.get(codec.A_TIMEOUT_TCP_FIN, 0),
                a.get(codec.A_TIMEOUT_UDP, 0))

    # -- writing ------------------------------------------------------------------------

    def encode(self, op: Op, seq: int, flags: int = codec.NLM_F_ACK) -> bytes:
        if op.dest is None:
            return codec.service_msg(self.family, _SERVICE_CMDS[op.kind], op.service, seq,
                                     flags)
        return codec.dest_msg(self.family, _DEST_CMDS[op.kind], op.service.key, op.dest, seq,
                              flags)

    def apply(self, ops: Iterable[Op]) -> ApplyResult:
        """Carry out ops in order, many per datagram. Errors are collected per op.

        The kernel goes on after a failed message, in order, so the dests of a service
        whose add failed come back ESRCH and are reported too.
        """
        errors: list[IpvsError] = []
        done = 0
        batch: list[bytes] = []
        by_seq: dict[int, Op] = {}
        size = 0

        def flush() -> None:
            nonlocal batch, by_seq, size, done
            if not batch:
                return
            batch[-1] = codec.with_flags(batch[-1], codec.NLM_F_ACK)
            failed = self._transact(b"".join(batch), next(reversed(by_seq)))
            for seq, code in failed.items():
                if seq in by_seq:
                    errors.append(IpvsError(code, explain(code, by_seq[seq]), by_seq[seq]))
            done += len(batch) - sum(1 for seq in failed if seq in by_seq)
            batch, by_seq, size = [], {}, 0

        for op in ops:
            seq = self._next_seq()
            msg = self.encode(op, seq, 0)
            if size + len(msg) > BATCH_BYTES:
                flush()
            batch.append(msg)
            by_seq[seq] = op
            size += len(msg)
        flush()
        return ApplyResult(done, tuple(errors))

    def set_timeouts(self, tcp: int | None = None, tcpfin: int | None = None,
                     udp: int | None = None) -> None:
        """Global timeouts (ipvsadm --set); None keeps the current value."""
        seq = self._next_seq()
        code = self._transact(codec.timeouts_msg(self.family, tcp, tcpfin, udp, seq),
                              seq).get(seq)
        if code:
            raise IpvsError(code, f"set timeouts: {os.strerror(code)}")

    def flush(self) -> None:
        """Remove every service in this namespace (ipvsadm -C). Never called by apply."""
        seq = self._next_seq()
        code = self._transact(codec.message(self.family, codec.FLUSH, b"", seq), seq).get(seq)
        if code:
            raise IpvsError(code, f"flush: {os.strerror(code)}")


__all__ = ["AF_INET", "AF_INET6", "ApplyResult", "IpvsError", "IpvsKernel", "IpvsUnavailable"]

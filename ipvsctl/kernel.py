"""The only module that writes the kernel's IPVS table.

pyroute2 resolves the generic netlink family "IPVS" (and, with `netns=`, creates the socket
inside a named network namespace). The requests themselves go out on that netlink socket
as bytes from `ipvsctl.codec`, many per sendmsg(): the kernel's genl_rcv loops over every
message in one datagram and acks each, so a 10k-dest table costs a few dozen syscalls
instead of 10k round trips. pyroute2 0.9.7's socket classes do one request per round trip
through an asyncio transport, and its IPVS encoding is wrong in places (see codec.py).
"""

from __future__ import annotations

import errno
import os
import socket
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ipvsctl import codec
from ipvsctl.diff import Kind, Op
from ipvsctl.model import AF_INET, AF_INET6, Dest, Service, ServiceKey, Table, hostport

NETLINK_GENERIC = 16
SOL_NETLINK = 270
NETLINK_CAP_ACK = 10  # acks without the echoed request: they stay 36 bytes
SO_RCVBUFFORCE = 33
RECV_TIMEOUT = 30.0  # seconds; a lost ack must not hang the daemon
BATCH_BYTES = 64 * 1024  # well under the default 208 KiB netlink sndbuf
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

    def _recv(self) -> bytes:
        try:
            return self.sock.recv(1 << 20)
        except TimeoutError:
            raise IpvsError(errno.ETIMEDOUT, "IPVS: no answer from the kernel") from None

    def _transact(self, msgs: Sequence[bytes], seqs: Sequence[int]) -> dict[int, int]:
        """Send several requests in one datagram; return seq -> errno (0 = ok) for each."""
        self.sock.sendall(b"".join(msgs))
        pending = set(seqs)
        result: dict[int, int] = {}
        while pending:
            data = self._recv()
            for kind, _flags, seq, payload in codec.iter_messages(data):
                if kind == codec.NLMSG_ERROR and seq in pending:
                    result[seq] = -int.from_bytes(payload[:4], sys.byteorder, signed=True)
                    pending.discard(seq)
        return result

    def _dump(self, cmd: int, attrs: bytes) -> list[memoryview]:
        seq = self._next_seq()
        self.sock.sendall(codec.message(self.family, cmd, attrs, seq, codec.NLM_F_DUMP))
        out: list[memoryview] = []
        while True:
            data = self._recv()
            for kind, _flags, mseq, payload in codec.iter_messages(data):
                if mseq != seq:
                    continue
                if kind == codec.NLMSG_DONE:
                    return out
                if kind == codec.NLMSG_ERROR:
                    code = -int.from_bytes(payload[:4], sys.byteorder, signed=True)
                    if code == errno.ENOENT and not out:
                        raise IpvsUnavailable("dump")
                    raise IpvsError(code, f"IPVS dump: {os.strerror(code)}")
                out.append(payload)

    def _request(self, cmd: int, attrs: bytes = b"") -> list[memoryview]:
        """One doit request that answers with data (GET_INFO, GET_CONFIG)."""
        seq = self._next_seq()
        self.sock.sendall(codec.message(self.family, cmd, attrs, seq, codec.NLM_F_ACK))
        out: list[memoryview] = []
        while True:
            for kind, _flags, mseq, payload in codec.iter_messages(self._recv()):
                if mseq != seq:
                    continue
                if kind == codec.NLMSG_ERROR:
                    code = -int.from_bytes(payload[:4], sys.byteorder, signed=True)
                    if code:
                        raise IpvsError(code, f"IPVS request {cmd}: {os.strerror(code)}")
                    return out
                out.append(payload)

    # -- reading ------------------------------------------------------------------------

    def info(self) -> tuple[int, int]:
        """(version as 0xMMmmpp, connection table size), as ipvsadm's first line shows."""
        attrs = codec.decode_top_u32(self._request(codec.GET_INFO)[0])
        return attrs.get(codec.I_VERSION, 0), attrs.get(codec.I_CONN_TAB_SIZE, 0)

    def services(self) -> list[Service]:
        return [codec.decode_service(p) for p in self._dump(codec.GET_SERVICE, b"")]

    def dests(self, key: ServiceKey) -> list[Dest]:
        # A dump for a missing service is empty, not an error (kernel behaviour).
        attrs = codec.nla(codec.A_SERVICE | codec.NLA_F_NESTED, codec.service_key_attrs(key))
        return [codec.decode_dest(p, key.af) for p in self._dump(codec.GET_DEST, attrs)]

    def dump(self) -> Table:
        return Table.of([(svc, self.dests(svc.key)) for svc in self.services()])

    def timeouts(self) -> tuple[int, int, int]:
        a = codec.decode_top_u32(self._request(codec.GET_CONFIG)[0])
        return (a.get(codec.A_TIMEOUT_TCP, 0), a.get(codec.A_TIMEOUT_TCP_FIN, 0),
                a.get(codec.A_TIMEOUT_UDP, 0))

    # -- writing ------------------------------------------------------------------------

    def encode(self, op: Op, seq: int) -> bytes:
        svc = op.service
        if op.kind is Kind.ADD_SERVICE:
            return codec.service_msg(self.family, codec.NEW_SERVICE, svc, seq)
        if op.kind is Kind.EDIT_SERVICE:
            return codec.service_msg(self.family, codec.SET_SERVICE, svc, seq)
        if op.kind is Kind.DEL_SERVICE:
            return codec.service_msg(self.family, codec.DEL_SERVICE, svc, seq)
        cmd = {Kind.ADD_DEST: codec.NEW_DEST, Kind.EDIT_DEST: codec.SET_DEST,
               Kind.DEL_DEST: codec.DEL_DEST}[op.kind]
        assert op.dest is not None
        return codec.dest_msg(self.family, cmd, svc.key, op.dest, seq)

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
            for seq, code in self._transact(batch, list(by_seq)).items():
                if code:
                    errors.append(IpvsError(code, explain(code, by_seq[seq]), by_seq[seq]))
                else:
                    done += 1
            batch, by_seq, size = [], {}, 0

        for op in ops:
            seq = self._next_seq()
            msg = self.encode(op, seq)
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
        code = self._transact([codec.timeouts_msg(self.family, tcp, tcpfin, udp, seq)],
                              [seq])[seq]
        if code:
            raise IpvsError(code, f"set timeouts: {os.strerror(code)}")

    def flush(self) -> None:
        """Remove every service in this namespace (ipvsadm -C). Never called by apply."""
        seq = self._next_seq()
        code = self._transact([codec.message(self.family, codec.FLUSH, b"", seq)], [seq])[seq]
        if code:
            raise IpvsError(code, f"flush: {os.strerror(code)}")


__all__ = ["AF_INET", "AF_INET6", "ApplyResult", "IpvsError", "IpvsKernel", "IpvsUnavailable"]

"""The IPVS generic netlink codec: bytes in, bytes out, no sockets.

We own this encoding instead of using pyroute2 0.9.7's `ipvsmsg`/`IPVSService`/`IPVSDest`
because those get it wrong (docs/ipvs.md): no NETMASK for IPv6 services, no AF or NETMASK
for fwmark services (EINVAL), TUN_PORT in host byte order, "update" mapped to DEL, and stale
defaults on read-back. They are also ~50x slower to encode, which matters at 10k dests.
Layouts follow include/uapi/linux/ip_vs.h; every message always carries the full attribute
set the kernel needs (AF, NETMASK, FLAGS with a mask, TIMEOUT; ADDR_FAMILY on dests).
"""

from __future__ import annotations

import socket
import struct
import sys
from collections.abc import Iterator
from functools import lru_cache

from ipvsctl.layout import BYTES, U8, U16, U32, Reader, Spans, spans
from ipvsctl.model import (
    AF_INET6,
    F_HASHED,
    Dest,
    Service,
    ServiceKey,
    Stats,
)

# Netlink and generic netlink framing.
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK, NLM_F_DUMP = 0x1, 0x2, 0x4, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLA_F_NESTED = 0x8000
GENL_VERSION = 1  # IPVS_GENL_VERSION

# Commands (IPVS_CMD_*).
NEW_SERVICE, SET_SERVICE, DEL_SERVICE, GET_SERVICE = 1, 2, 3, 4
NEW_DEST, SET_DEST, DEL_DEST, GET_DEST = 5, 6, 7, 8
SET_CONFIG, GET_CONFIG, GET_INFO, ZERO, FLUSH = 12, 13, 15, 16, 17

# Top-level attributes (IPVS_CMD_ATTR_*).
A_SERVICE, A_DEST, A_TIMEOUT_TCP, A_TIMEOUT_TCP_FIN, A_TIMEOUT_UDP = 1, 2, 4, 5, 6
# Service attributes (IPVS_SVC_ATTR_*).
S_AF, S_PROTOCOL, S_ADDR, S_PORT, S_FWMARK, S_SCHED_NAME = 1, 2, 3, 4, 5, 6
S_FLAGS, S_TIMEOUT, S_NETMASK, S_STATS, S_PE_NAME, S_STATS64 = 7, 8, 9, 10, 11, 12
# Dest attributes (IPVS_DEST_ATTR_*).
D_ADDR, D_PORT, D_FWD_METHOD, D_WEIGHT, D_U_THRESH, D_L_THRESH = 1, 2, 3, 4, 5, 6
D_ACTIVE_CONNS, D_INACT_CONNS, D_PERSIST_CONNS, D_STATS = 7, 8, 9, 10
D_ADDR_FAMILY, D_STATS64, D_TUN_TYPE, D_TUN_PORT, D_TUN_FLAGS = 11, 12, 13, 14, 15
# Info attributes (IPVS_INFO_ATTR_*), top level in the GET_INFO reply.
I_VERSION, I_CONN_TAB_SIZE = 1, 2
STATS_FIELDS = ("conns", "inpkts", "outpkts", "inbytes", "outbytes",
                "cps", "inpps", "outpps", "inbps", "outbps")

_NLA = struct.Struct("=HH")
_HDR = struct.Struct("=IHHII")  # nlmsghdr: len, type, flags, seq, pid
_GENL = struct.Struct("=BBH")
_HDR_GENL = struct.Struct("=IHHIIBBH")  # both at once: one pack per message
_FLAGS_AT = 6  # offset of nlmsg_flags in the header
_U16, _U32, _BE16, _BE32 = struct.Struct("=H"), struct.Struct("=I"), struct.Struct(">H"), \
    struct.Struct(">I")
# The common dest bodies in one pack each: ADDR, PORT (be16, via htons), ADDR_FAMILY,
# FWD_METHOD, WEIGHT, U_THRESH, L_THRESH; then the tunnel triple when fwd is TUN.
_DEST_KEY4 = struct.Struct("=HH4sHHH2xHHH2x")
_DEST_KEY6 = struct.Struct("=HH16sHHH2xHHH2x")
_DEST_FULL = struct.Struct("=HHIHHIHHIHHI")
_DEST_TUN = struct.Struct("=HHB3xHHH2xHHH2x")
_STATS64 = struct.Struct("=" + "HHQ" * len(STATS_FIELDS))  # the kernel's STATS64 nest
_STATS64_SIZES = (12,) * len(STATS_FIELDS)
_STATS64_KINDS = tuple(range(1, len(STATS_FIELDS) + 1))


def nla(kind: int, payload: bytes) -> bytes:
    size = 4 + len(payload)
    return _NLA.pack(size, kind) + payload + b"\0" * (-size % 4)


def _nla_u16(kind: int, v: int) -> bytes:
    return nla(kind, _U16.pack(v))


def _nla_u32(kind: int, v: int) -> bytes:
    return nla(kind, _U32.pack(v))


def _nla_be16(kind: int, v: int) -> bytes:
    return nla(kind, _BE16.pack(v))


def _addr(af: int, text: str) -> bytes:
    return socket.inet_pton(af, text)


@lru_cache(maxsize=65536)
def service_key_attrs(key: ServiceKey) -> bytes:
    """The identifying attributes: AF plus FWMARK, or PROTOCOL+ADDR+PORT.

    Cached: every dest op of a service carries them, and a key is immutable."""
    if key.fwmark:
        return _nla_u16(S_AF, key.af) + _nla_u32(S_FWMARK, key.fwmark)
    return (_nla_u16(S_AF, key.af) + _nla_u16(S_PROTOCOL, key.protocol)
            + nla(S_ADDR, _addr(key.af, key.addr)) + _nla_be16(S_PORT, key.port))


@lru_cache(maxsize=65536)
def service_nest(key: ServiceKey) -> bytes:
    """The SERVICE nest that names a service in dest requests and GET_DEST dumps."""
    return nla(A_SERVICE | NLA_F_NESTED, service_key_attrs(key))


def netmask_bytes(af: int, netmask: int) -> bytes:
    # The kernel keeps a __be32: a v4 mask in network order, or a v6 prefix length that it
    # compares as a plain integer (1..128), so v6 goes in host order.
    return struct.pack(">I" if af != AF_INET6 else "=I", netmask)


def service_attrs(svc: Service) -> bytes:
    """The full entry NEW/SET_SERVICE need (the kernel says EINVAL if one is missing)."""
    k = svc.key
    body = (service_key_attrs(k) + nla(S_SCHED_NAME, svc.sched.encode() + b"\0")
            + nla(S_FLAGS, struct.pack("=II", svc.flags, 0xFFFFFFFF))
            + _nla_u32(S_TIMEOUT, svc.timeout) + nla(S_NETMASK, netmask_bytes(k.af, svc.netmask)))
    if svc.pe_name:
        body += nla(S_PE_NAME, svc.pe_name.encode() + b"\0")
    return body


def dest_attrs(d: Dest, full: bool = True) -> bytes:
    port = socket.htons(d.port)  # packed in host order: network order on the wire
    if d.af == AF_INET6:
        body = _DEST_KEY6.pack(20, D_ADDR, _addr(d.af, d.addr), 6, D_PORT, port,
                               6, D_ADDR_FAMILY, d.af)
    else:
        body = _DEST_KEY4.pack(8, D_ADDR, _addr(d.af, d.addr), 6, D_PORT, port,
                               6, D_ADDR_FAMILY, d.af)
    if full:
        body += _DEST_FULL.pack(8, D_FWD_METHOD, d.fwd, 8, D_WEIGHT, d.weight,
                                8, D_U_THRESH, d.u_thresh, 8, D_L_THRESH, d.l_thresh)
        if d.fwd == 2:  # tunnel: the kernel reads TUN_PORT as be16 (pyroute2 sends host order)
            body += _DEST_TUN.pack(5, D_TUN_TYPE, d.tun_type, 6, D_TUN_PORT,
                                   socket.htons(d.tun_port), 6, D_TUN_FLAGS, d.tun_flags)
    return body


def message(family: int, cmd: int, attrs: bytes, seq: int, flags: int = NLM_F_ACK) -> bytes:
    return _HDR_GENL.pack(20 + len(attrs), family, NLM_F_REQUEST | flags, seq, 0,
                          cmd, GENL_VERSION, 0) + attrs


def with_flags(msg: bytes, flags: int) -> bytes:
    """The same request with other nlmsg flags (a batch asks an ack of its last one only)."""
    return msg[:_FLAGS_AT] + _U16.pack(NLM_F_REQUEST | flags) + msg[_FLAGS_AT + 2:]


def service_msg(family: int, cmd: int, svc: Service, seq: int, flags: int = NLM_F_ACK
                ) -> bytes:
    attrs = service_key_attrs(svc.key) if cmd == DEL_SERVICE else service_attrs(svc)
    return message(family, cmd, nla(A_SERVICE | NLA_F_NESTED, attrs), seq, flags)


def dest_msg(family: int, cmd: int, key: ServiceKey, d: Dest, seq: int,
             flags: int = NLM_F_ACK) -> bytes:
    svc = service_nest(key)
    body = dest_attrs(d, full=cmd != DEL_DEST)
    size = 24 + len(svc) + len(body)  # nlmsghdr + genl header + both nests
    return b"".join((_HDR_GENL.pack(size, family, NLM_F_REQUEST | flags, seq, 0, cmd,
                                    GENL_VERSION, 0),
                     svc, _NLA.pack(4 + len(body), A_DEST | NLA_F_NESTED), body))


def timeouts_msg(family: int, tcp: int | None, tcpfin: int | None, udp: int | None,
                 seq: int) -> bytes:
    attrs = b"".join(_nla_u32(kind, v) for kind, v in
                     ((A_TIMEOUT_TCP, tcp), (A_TIMEOUT_TCP_FIN, tcpfin), (A_TIMEOUT_UDP, udp))
                     if v is not None)
    return message(family, SET_CONFIG, attrs, seq)


# --------------------------------------------------------------------------- decoding
# A full dump decodes ~10k dests: layout.Reader reads each with one struct call.

Buffer = bytes | bytearray | memoryview


def iter_messages(data: Buffer) -> Iterator[tuple[int, int, int, memoryview]]:
    """(type, flags, seq, payload) for each netlink message in a datagram."""
    view = memoryview(data)
    off = 0
    while off + 16 <= len(view):
        size, kind, flags, seq, _pid = _HDR.unpack_from(view, off)
        if size < 16:
            break
        yield kind, flags, seq, view[off + 16:off + size]
        off += (size + 3) & ~3


def parse_attrs(buf: Buffer, off: int = 0) -> dict[int, memoryview]:
    view = memoryview(buf)
    return {k: view[a:b] for k, (a, b) in spans(view, off, len(view)).items()}


def _text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode()


_NO_STATS = Stats()  # immutable: one for every reply read without its counters


def _stats(buf: Buffer, where: Spans, s32: int, s64: int) -> Stats:
    span = where.get(s64) or where.get(s32)
    if span is None:
        return _NO_STATS
    start, end = span
    if end - start == _STATS64.size:  # the kernel's layout: one unpack, headers checked
        v = _STATS64.unpack_from(buf, start)
        if v[0::3] == _STATS64_SIZES and v[1::3] == _STATS64_KINDS:
            return Stats(*v[2::3])
    s = spans(buf, start, end)
    return Stats(*(int.from_bytes(buf[s[i + 1][0]:s[i + 1][1]], sys.byteorder)
                   if i + 1 in s else 0 for i in range(len(STATS_FIELDS))))


def _addr_text(af: int, raw: bytes) -> str:
    return socket.inet_ntop(af, raw[:16] if af == AF_INET6 else raw[:4])


# be16 values (ports) are read as host-order u16 and turned with ntohs.
_SERVICE = Reader(A_SERVICE, {
    S_AF: U16, S_PROTOCOL: U16, S_ADDR: BYTES, S_PORT: U16, S_FWMARK: U32,
    S_SCHED_NAME: BYTES, S_FLAGS: BYTES, S_TIMEOUT: U32, S_NETMASK: BYTES, S_PE_NAME: BYTES,
}, (S_AF, S_PROTOCOL, S_ADDR, S_PORT, S_FWMARK, S_SCHED_NAME, S_FLAGS, S_TIMEOUT, S_NETMASK,
    S_PE_NAME))
_DEST = Reader(A_DEST, {
    D_ADDR: BYTES, D_PORT: U16, D_FWD_METHOD: U32, D_WEIGHT: U32, D_U_THRESH: U32,
    D_L_THRESH: U32, D_ACTIVE_CONNS: U32, D_INACT_CONNS: U32, D_PERSIST_CONNS: U32,
    D_ADDR_FAMILY: U16, D_TUN_TYPE: U8, D_TUN_PORT: U16, D_TUN_FLAGS: U16,
}, (D_ADDR, D_PORT, D_ADDR_FAMILY, D_FWD_METHOD, D_WEIGHT, D_U_THRESH, D_L_THRESH,
    D_TUN_TYPE, D_TUN_PORT, D_TUN_FLAGS, D_ACTIVE_CONNS, D_INACT_CONNS, D_PERSIST_CONNS),
    volatile=frozenset({D_ACTIVE_CONNS, D_INACT_CONNS, D_PERSIST_CONNS, D_STATS, D_STATS64}))


def decode_service(payload: Buffer, stats: bool = True) -> Service:
    """A NEW_SERVICE reply (genl header included in payload) -> Service."""
    (af, proto, addr, port, fwmark, sched, flags, timeout, netmask, pe), where = \
        _SERVICE.read(payload)
    if fwmark:
        key = ServiceKey(af, 0, "", 0, fwmark)
    else:
        key = ServiceKey(af, proto, _addr_text(af, addr), socket.ntohs(port), 0)
    mask = (_U32 if af == AF_INET6 else _BE32).unpack(netmask)[0] if len(netmask) == 4 else 0
    fl = _U32.unpack_from(flags)[0] & ~F_HASHED if len(flags) >= 4 else 0  # {flags, mask}
    return Service(key, _text(sched), fl, timeout, mask, _text(pe),
                   _stats(payload, where, S_STATS, S_STATS64) if stats else _NO_STATS)


def decode_dest(payload: Buffer, service_af: int, stats: bool = True) -> Dest:
    """A NEW_DEST reply -> Dest; `stats=False` leaves every counter at 0 (a diff ignores
    them), which is what lets `DestMemo` hand back an earlier reply's Dest."""
    (addr, port, af, fwd, weight, u, lo, tun_type, tun_port, tun_flags, active, inact,
     persist), where = _DEST.read(payload)
    af = af or service_af
    if not stats:
        return Dest(_addr_text(af, addr), socket.ntohs(port), af, fwd & 0x7, weight, u, lo,
                    tun_type, socket.ntohs(tun_port), tun_flags)
    return Dest(_addr_text(af, addr), socket.ntohs(port), af, fwd & 0x7, weight, u, lo,
                tun_type, socket.ntohs(tun_port), tun_flags, active, inact, persist,
                _stats(payload, where, D_STATS, D_STATS64))


class DestMemo:
    """Dests read without counters, by the bytes of their reply minus the counters: a
    resync dumps the same ~10k dests again and again, and a dict look-up of those bytes is
    ~5x cheaper than decoding them. Kept from one dump to the next only for what the last
    dump saw, so it never outgrows the table."""

    def __init__(self) -> None:
        self.last: dict[tuple[int, bytes], Dest] = {}
        self.seen: dict[tuple[int, bytes], Dest] = {}

    def next_dump(self) -> None:
        self.last, self.seen = self.seen, {}

    def decode(self, payload: Buffer, service_af: int) -> Dest:
        raw = _DEST.key(payload)
        if raw is None:  # no known layout yet: decode (and so learn it)
            return decode_dest(payload, service_af, stats=False)
        key = (service_af, raw)
        d = self.last.get(key) or decode_dest(payload, service_af, stats=False)
        self.seen[key] = d
        return d


def decode_top_u32(payload: Buffer) -> dict[int, int]:
    """Top-level u32 attributes (GET_INFO, GET_CONFIG replies)."""
    return {k: _U32.unpack_from(payload, a)[0] for k, (a, _b) in
            spans(payload, 4, len(payload)).items()}

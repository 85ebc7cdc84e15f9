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
_U16, _U32, _BE16, _U64 = struct.Struct("=H"), struct.Struct("=I"), struct.Struct(">H"), \
    struct.Struct("=Q")


def nla(kind: int, payload: bytes) -> bytes:
    size = 4 + len(payload)
    return _NLA.pack(size, kind) + payload + b"\0" * (-size % 4)


def _u16(kind: int, v: int) -> bytes:
    return nla(kind, _U16.pack(v))


def _u32(kind: int, v: int) -> bytes:
    return nla(kind, _U32.pack(v))


def _be16(kind: int, v: int) -> bytes:
    return nla(kind, _BE16.pack(v))


def _addr(af: int, text: str) -> bytes:
    return socket.inet_pton(af, text)


def service_key_attrs(key: ServiceKey) -> bytes:
    """The identifying attributes: AF plus FWMARK, or PROTOCOL+ADDR+PORT."""
    if key.fwmark:
        return _u16(S_AF, key.af) + _u32(S_FWMARK, key.fwmark)
    return (_u16(S_AF, key.af) + _u16(S_PROTOCOL, key.protocol)
            + nla(S_ADDR, _addr(key.af, key.addr)) + _be16(S_PORT, key.port))


def netmask_bytes(af: int, netmask: int) -> bytes:
    # The kernel keeps a __be32: a v4 mask in network order, or a v6 prefix length that it
    # compares as a plain integer (1..128), so v6 goes in host order.
    return struct.pack(">I" if af != AF_INET6 else "=I", netmask)


def service_attrs(svc: Service) -> bytes:
    """The full entry NEW/SET_SERVICE need (the kernel says EINVAL if one is missing)."""
    k = svc.key
    body = (service_key_attrs(k) + nla(S_SCHED_NAME, svc.sched.encode() + b"\0")
            + nla(S_FLAGS, struct.pack("=II", svc.flags, 0xFFFFFFFF))
            + _u32(S_TIMEOUT, svc.timeout) + nla(S_NETMASK, netmask_bytes(k.af, svc.netmask)))
    if svc.pe_name:
        body += nla(S_PE_NAME, svc.pe_name.encode() + b"\0")
    return body


def dest_attrs(d: Dest, full: bool = True) -> bytes:
    body = nla(D_ADDR, _addr(d.af, d.addr)) + _be16(D_PORT, d.port) \
        + _u16(D_ADDR_FAMILY, d.af)
    if full:
        body += (_u32(D_FWD_METHOD, d.fwd) + _u32(D_WEIGHT, d.weight)
                 + _u32(D_U_THRESH, d.u_thresh) + _u32(D_L_THRESH, d.l_thresh))
        if d.fwd == 2:  # tunnel: the kernel reads TUN_PORT as be16 (pyroute2 sends host order)
            body += (nla(D_TUN_TYPE, bytes([d.tun_type])) + _be16(D_TUN_PORT, d.tun_port)
                     + _u16(D_TUN_FLAGS, d.tun_flags))
    return body


def message(family: int, cmd: int, attrs: bytes, seq: int, flags: int = NLM_F_ACK) -> bytes:
    return (_HDR.pack(20 + len(attrs), family, NLM_F_REQUEST | flags, seq, 0)
            + _GENL.pack(cmd, GENL_VERSION, 0) + attrs)


def service_msg(family: int, cmd: int, svc: Service, seq: int) -> bytes:
    attrs = service_key_attrs(svc.key) if cmd == DEL_SERVICE else service_attrs(svc)
    return message(family, cmd, nla(A_SERVICE | NLA_F_NESTED, attrs), seq)


def dest_msg(family: int, cmd: int, key: ServiceKey, d: Dest, seq: int) -> bytes:
    return message(family, cmd, nla(A_SERVICE | NLA_F_NESTED, service_key_attrs(key))
                   + nla(A_DEST | NLA_F_NESTED, dest_attrs(d, full=cmd != DEL_DEST)), seq)


def timeouts_msg(family: int, tcp: int | None, tcpfin: int | None, udp: int | None,
                 seq: int) -> bytes:
    attrs = b"".join(_u32(kind, v) for kind, v in
                     ((A_TIMEOUT_TCP, tcp), (A_TIMEOUT_TCP_FIN, tcpfin), (A_TIMEOUT_UDP, udp))
                     if v is not None)
    return message(family, SET_CONFIG, attrs, seq)


# --------------------------------------------------------------------------- decoding

def iter_messages(data: bytes) -> Iterator[tuple[int, int, int, memoryview]]:
    """(type, flags, seq, payload) for each netlink message in a datagram."""
    view = memoryview(data)
    off = 0
    while off + 16 <= len(view):
        size, kind, flags, seq, _pid = _HDR.unpack_from(view, off)
        if size < 16:
            break
        yield kind, flags, seq, view[off + 16:off + size]
        off += (size + 3) & ~3


def parse_attrs(buf: memoryview | bytes, off: int = 0) -> dict[int, memoryview]:
    view = memoryview(buf)
    out: dict[int, memoryview] = {}
    while off + 4 <= len(view):
        size, kind = _NLA.unpack_from(view, off)
        if size < 4:
            break
        out[kind & 0x3FFF] = view[off + 4:off + size]
        off += (size + 3) & ~3
    return out


def _int(v: memoryview | None, default: int = 0) -> int:
    if v is None:
        return default
    return int.from_bytes(v, sys.byteorder)  # u8/u16/u32/u64 are in host order


def _text(v: memoryview | None) -> str:
    return bytes(v).split(b"\0", 1)[0].decode() if v is not None else ""


def _stats(a: dict[int, memoryview], s32: int, s64: int) -> Stats:
    raw = a.get(s64) or a.get(s32)
    if raw is None:
        return Stats()
    s = parse_attrs(raw)
    return Stats(*(_int(s.get(i + 1)) for i in range(len(STATS_FIELDS))))


def _addr_text(af: int, raw: memoryview) -> str:
    size = 16 if af == AF_INET6 else 4
    return socket.inet_ntop(af, bytes(raw[:size]))


def decode_service(payload: memoryview) -> Service:
    """A NEW_SERVICE reply (genl header included in payload) -> Service."""
    top = parse_attrs(payload, 4)
    a = parse_attrs(top[A_SERVICE])
    af = _int(a.get(S_AF))
    fwmark = _int(a.get(S_FWMARK))
    if fwmark:
        key = ServiceKey(af, 0, "", 0, fwmark)
    else:
        key = ServiceKey(af, _int(a.get(S_PROTOCOL)), _addr_text(af, a[S_ADDR]),
                         int.from_bytes(a[S_PORT], "big"), 0)
    flags = struct.unpack_from("=I", a[S_FLAGS])[0] if S_FLAGS in a else 0
    netmask = int.from_bytes(a[S_NETMASK], sys.byteorder if af == AF_INET6 else "big") \
        if S_NETMASK in a else 0
    return Service(key, _text(a.get(S_SCHED_NAME)), flags & ~F_HASHED, _int(a.get(S_TIMEOUT)),
                   netmask, _text(a.get(S_PE_NAME)), _stats(a, S_STATS, S_STATS64))


def decode_dest(payload: memoryview, service_af: int) -> Dest:
    top = parse_attrs(payload, 4)
    a = parse_attrs(top[A_DEST])
    af = _int(a.get(D_ADDR_FAMILY), service_af) or service_af
    return Dest(_addr_text(af, a[D_ADDR]), int.from_bytes(a[D_PORT], "big"), af,
                _int(a.get(D_FWD_METHOD)) & 0x7, _int(a.get(D_WEIGHT)),
                _int(a.get(D_U_THRESH)), _int(a.get(D_L_THRESH)), _int(a.get(D_TUN_TYPE)),
                int.from_bytes(a[D_TUN_PORT], "big") if D_TUN_PORT in a else 0,
                _int(a.get(D_TUN_FLAGS)), _int(a.get(D_ACTIVE_CONNS)),
                _int(a.get(D_INACT_CONNS)), _int(a.get(D_PERSIST_CONNS)),
                _stats(a, D_STATS, D_STATS64))


def decode_top_u32(payload: memoryview) -> dict[int, int]:
    """Top-level u32 attributes (GET_INFO, GET_CONFIG replies)."""
    return {k: _int(v[:4]) for k, v in parse_attrs(payload, 4).items()}

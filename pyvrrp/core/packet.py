"""VRRP advertisement codec (RFC 3768 v2, RFC 5798 v3 over IPv4) and IPv4 header parsing.

Pure functions, no sockets. Structural problems raise `DecodeError` with a short `reason`
that the receive path counts by; semantic checks (VRID, auth, interval, addresses) belong
to the virtual router, which knows its configuration.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from ipaddress import IPv4Address

VRRP_PROTO = 112
ADVERTISEMENT = 1
AUTH_NONE = 0
AUTH_PASS = 1
AUTH_AH = 2
_HEADER = struct.Struct("!BBBBBBH")
_AUTH_LEN = 8


class DecodeError(ValueError):
    """A packet from the wire that is not a well-formed VRRP advertisement."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True)
class Advert:
    """One VRRP advertisement. `interval_cs` is in centiseconds for both versions."""

    version: int
    vrid: int
    priority: int
    addresses: tuple[IPv4Address, ...]
    interval_cs: int = 100
    auth_type: int = AUTH_NONE
    auth_data: bytes = field(default=b"\0" * _AUTH_LEN)


@dataclass(frozen=True)
class IPv4Datagram:
    src: IPv4Address
    dst: IPv4Address
    ttl: int
    proto: int
    payload: bytes


def checksum(data: bytes) -> int:
    """RFC 1071 Internet checksum."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _pseudo_header(src: IPv4Address, dst: IPv4Address, length: int) -> bytes:
    return src.packed + dst.packed + struct.pack("!BBH", 0, VRRP_PROTO, length)


def pass_auth_data(password: str) -> bytes:
    """keepalived uses only the first 8 characters of a PASS password, zero padded."""
    return password.encode()[:_AUTH_LEN].ljust(_AUTH_LEN, b"\0")


def encode(
    adv: Advert, src: IPv4Address | None = None, dst: IPv4Address | None = None
) -> bytes:
    """Encode an advert. v3 needs `src` and `dst` for its pseudo-header checksum."""
    if not 1 <= adv.vrid <= 255:
        raise ValueError(f"VRID {adv.vrid} outside 1..255")
    if not 0 <= adv.priority <= 255:
        raise ValueError(f"priority {adv.priority} outside 0..255")
    if len(adv.addresses) > 255:
        raise ValueError("more than 255 addresses")
    addrs = b"".join(a.packed for a in adv.addresses)
    if adv.version == 2:
        if adv.interval_cs % 100 or not 100 <= adv.interval_cs <= 25500:
            raise ValueError("VRRPv2 advert interval must be whole seconds in 1..255")
        auth = adv.auth_data.ljust(_AUTH_LEN, b"\0")[:_AUTH_LEN]
        head = _HEADER.pack(0x21, adv.vrid, adv.priority, len(adv.addresses),
                            adv.auth_type, adv.interval_cs // 100, 0)
        body = head + addrs + auth
        csum = checksum(body)
    elif adv.version == 3:
        if not 1 <= adv.interval_cs <= 0xFFF:
            raise ValueError("VRRPv3 advert interval must be 1..4095 centiseconds")
        if src is None or dst is None:
            raise ValueError("VRRPv3 checksum needs source and destination addresses")
        word = adv.interval_cs & 0xFFF
        head = _HEADER.pack(0x31, adv.vrid, adv.priority, len(adv.addresses),
                            word >> 8, word & 0xFF, 0)
        body = head + addrs
        csum = checksum(_pseudo_header(src, dst, len(body)) + body)
    else:
        raise ValueError(f"unsupported VRRP version {adv.version}")
    return body[:6] + struct.pack("!H", csum) + body[8:]


def decode(
    data: bytes, src: IPv4Address | None = None, dst: IPv4Address | None = None
) -> Advert:
    """Decode and structurally validate a VRRP message (the IP payload).

    Trailing bytes beyond the advertised length (Ethernet padding) are ignored.
    """
    if len(data) < 8:
        raise DecodeError("length", f"{len(data)} bytes, need at least 8")
    vt, vrid, prio, count, b4, b5, _ = _HEADER.unpack_from(data)
    version, ptype = vt >> 4, vt & 0xF
    if version not in (2, 3):
        raise DecodeError("version", f"version {version}")
    need = 8 + 4 * count + (_AUTH_LEN if version == 2 else 0)
    if len(data) < need:
        raise DecodeError("length", f"{len(data)} bytes, {count} addresses need {need}")
    msg = data[:need]
    if version == 2:
        ok = checksum(msg) == 0
    else:
        if src is None or dst is None:
            raise DecodeError("checksum", "VRRPv3 needs IP addresses to check")
        ok = checksum(_pseudo_header(src, dst, need) + msg) == 0
    if not ok:
        raise DecodeError("checksum")
    if ptype != ADVERTISEMENT:
        raise DecodeError("type", f"type {ptype}")
    if vrid == 0:
        raise DecodeError("vrid", "VRID 0")
    addrs = tuple(IPv4Address(msg[8 + 4 * i: 12 + 4 * i]) for i in range(count))
    if version == 2:
        if b5 == 0:
            raise DecodeError("interval", "advert interval 0")
        return Advert(2, vrid, prio, addrs, b5 * 100, b4, msg[need - _AUTH_LEN: need])
    interval = ((b4 & 0xF) << 8) | b5
    if interval == 0:
        raise DecodeError("interval", "advert interval 0")
    return Advert(3, vrid, prio, addrs, interval, AUTH_NONE, b"")


def parse_ipv4(datagram: bytes) -> IPv4Datagram:
    """Split a raw IPv4 datagram (as a raw socket delivers it) into header fields."""
    if len(datagram) < 20 or datagram[0] >> 4 != 4:
        raise DecodeError("ip", "not an IPv4 datagram")
    ihl = (datagram[0] & 0xF) * 4
    total = struct.unpack_from("!H", datagram, 2)[0]
    if ihl < 20 or len(datagram) < ihl or total < ihl:
        raise DecodeError("ip", "bad IPv4 header length")
    end = min(total, len(datagram))
    return IPv4Datagram(
        src=IPv4Address(datagram[12:16]),
        dst=IPv4Address(datagram[16:20]),
        ttl=datagram[8],
        proto=datagram[9],
        payload=datagram[ihl:end],
    )

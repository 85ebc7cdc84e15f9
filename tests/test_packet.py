"""The VRRP codec against RFC 3768 (v2) / RFC 5798 (v3 over IPv4) and scapy's own layers.

scapy's `VRRP`/`VRRPv3` classes are an independent implementation of the same wire format,
so they serve as the oracle for field placement and checksums; raw malformed packets are
built by hand with `struct` and scapy's RFC 1071 checksum.
"""

from __future__ import annotations

import struct
from ipaddress import IPv4Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP
from scapy.layers.vrrp import VRRP, VRRPv3
from scapy.packet import Raw
from scapy.utils import checksum as scapy_checksum

from pyvrrp.core.packet import (
    AUTH_NONE,
    AUTH_PASS,
    VRRP_PROTO,
    Advert,
    DecodeError,
    checksum,
    decode,
    encode,
    parse_ipv4,
    pass_auth_data,
)

SRC = IPv4Address("10.0.0.1")
GROUP = IPv4Address("233.6.6.6")
VIPS = (IPv4Address("10.0.0.100"), IPv4Address("192.168.7.9"))
REASONS = {"length", "version", "checksum", "type", "vrid", "interval"}

addresses = st.builds(IPv4Address, st.integers(0, 2**32 - 1))

# The same examples every run, nothing written to disk, no wall-clock deadline.
deterministic = settings(derandomize=True, database=None, deadline=None)
fuzz = settings(deterministic, max_examples=250)


def v2_raw(
    *,
    vt: int = 0x21,
    vrid: int = 50,
    prio: int = 100,
    addrs: tuple[IPv4Address, ...] = VIPS,
    count: int | None = None,
    auth_type: int = AUTH_NONE,
    adv_int: int = 1,
    auth: bytes = b"\0" * 8,
    csum: int | None = None,
) -> bytes:
    """A VRRPv2 message laid out by hand from RFC 3768 section 5.1 (checksum by scapy)."""
    n = len(addrs) if count is None else count
    body = struct.pack("!BBBBBBH", vt, vrid, prio, n, auth_type, adv_int, 0)
    body += b"".join(x.packed for x in addrs) + auth
    ck = scapy_checksum(body) if csum is None else csum
    return body[:6] + struct.pack("!H", ck) + body[8:]


def v3_raw(*, vt: int = 0x31, vrid: int = 50, prio: int = 100, interval_cs: int = 100,
           addrs: tuple[IPv4Address, ...] = VIPS, src: IPv4Address = SRC,
           dst: IPv4Address = GROUP) -> bytes:
    """A VRRPv3 message over IPv4 built by scapy, checksum over the IPv4 pseudo-header."""
    pkt = IP(src=str(src), dst=str(dst), ttl=255) / VRRPv3(
        version=vt >> 4, type=vt & 0xF, vrid=vrid, priority=prio, adv=interval_cs,
        addrlist=[str(x) for x in addrs])
    return bytes(IP(bytes(pkt)).payload)


def reason_of(data: bytes, src: IPv4Address | None = None,
              dst: IPv4Address | None = None) -> str:
    with pytest.raises(DecodeError) as err:
        decode(data, src, dst)
    return err.value.reason


# -- RFC 1071 ------------------------------------------------------------------------------


@pytest.mark.parametrize(("data", "expected"), [
    # RFC 1071 section 3: 0001 f203 f4f5 f6f7 sums to ddf2, whose complement is 220d.
    (bytes.fromhex("0001f203f4f5f6f7"), 0x220D),
    # The classic IPv4 header example (checksum field zeroed) -> b861.
    (bytes.fromhex("450000730000400040110000c0a80001c0a800c7"), 0xB861),
    # Odd length: the last byte is padded with a zero octet on the right.
    (b"\x01", 0xFEFF),
    (b"", 0xFFFF),
    (b"\xff\xff", 0x0000),
])
def test_rfc1071_known_vectors(data: bytes, expected: int) -> None:
    assert checksum(data) == expected


@deterministic
@given(st.binary(max_size=300))
def test_checksum_agrees_with_scapy_and_verifies_to_zero(data: bytes) -> None:
    ck = checksum(data)
    assert ck == scapy_checksum(data)
    if len(data) % 2 == 0:
        # Appending the checksum makes the one's complement sum all ones (checksum 0).
        assert checksum(data + struct.pack("!H", ck)) == 0


# -- v2 encoding (conformance case 1) --------------------------------------------------------


def test_case1_v2_layout_by_hand() -> None:
    """Case 1: ver 2, type 1, VRID, priority, count N, auth 0, adv 1, VIPs, 8 zero bytes."""
    raw = encode(Advert(2, 50, 100, VIPS))
    assert len(raw) == 16 + 4 * len(VIPS)
    assert raw[0] == 0x21
    assert struct.unpack_from("!BBBB", raw, 1) == (50, 100, len(VIPS), AUTH_NONE)
    assert raw[5] == 1
    assert raw[8:16] == VIPS[0].packed + VIPS[1].packed
    assert raw[-8:] == b"\0" * 8
    # RFC 1071 over the VRRP message alone (no pseudo-header) verifies to zero.
    assert scapy_checksum(raw) == 0


@pytest.mark.parametrize("adv", [
    Advert(2, 50, 100, VIPS),
    Advert(2, 1, 0, (VIPS[0],)),
    Advert(2, 255, 255, VIPS, interval_cs=25500),
    Advert(2, 7, 254, (), interval_cs=300),
    Advert(2, 50, 80, VIPS, auth_type=AUTH_PASS, auth_data=pass_auth_data("1111")),
    Advert(2, 50, 80, VIPS, auth_type=AUTH_PASS, auth_data=pass_auth_data("0123456789")),
])
def test_v2_encode_read_by_scapy(adv: Advert) -> None:
    raw = encode(adv)
    pkt = VRRP(raw)
    assert isinstance(pkt, VRRP)
    assert (pkt.version, pkt.type) == (2, 1)
    assert (pkt.vrid, pkt.priority) == (adv.vrid, adv.priority)
    assert pkt.ipcount == len(adv.addresses)
    assert pkt.addrlist == [str(x) for x in adv.addresses]
    assert pkt.authtype == adv.auth_type
    assert pkt.adv == adv.interval_cs // 100
    assert struct.pack("!II", pkt.auth1, pkt.auth2) == adv.auth_data
    # scapy's own checksum over the rebuilt message equals ours.
    ours = pkt.chksum
    pkt.chksum = None
    rebuilt = bytes(pkt)
    assert rebuilt == raw
    assert VRRP(rebuilt).chksum == ours


def test_pass_auth_data_uses_first_eight_characters() -> None:
    assert pass_auth_data("1111") == b"1111\0\0\0\0"
    assert pass_auth_data("0123456789") == b"01234567"
    assert pass_auth_data("") == b"\0" * 8


# -- v3 encoding ----------------------------------------------------------------------------


@pytest.mark.parametrize("adv", [
    Advert(3, 50, 100, VIPS),
    Advert(3, 9, 255, (VIPS[0],), interval_cs=1),
    Advert(3, 200, 1, VIPS, interval_cs=4095),
    Advert(3, 50, 0, VIPS, interval_cs=10),
])
def test_v3_encode_read_by_scapy(adv: Advert) -> None:
    """Case 3: ver 3, 12-bit centisecond interval, pseudo-header checksum, length 8+4N."""
    raw = encode(adv, SRC, GROUP)
    assert len(raw) == 8 + 4 * len(adv.addresses)
    wire = bytes(IP(src=str(SRC), dst=str(GROUP), ttl=255, proto=VRRP_PROTO) / Raw(raw))
    pkt = IP(wire)
    v3 = pkt[VRRPv3]
    assert (v3.version, v3.type) == (3, 1)
    assert (v3.vrid, v3.priority, v3.ipcount) == (adv.vrid, adv.priority, len(adv.addresses))
    assert v3.res == 0
    assert v3.adv == adv.interval_cs
    assert v3.addrlist == [str(x) for x in adv.addresses]
    ours = v3.chksum
    v3.chksum = None
    assert IP(bytes(pkt))[VRRPv3].chksum == ours


def test_v3_checksum_covers_the_pseudo_header() -> None:
    raw = encode(Advert(3, 50, 100, VIPS), SRC, GROUP)
    other = encode(Advert(3, 50, 100, VIPS), IPv4Address("10.0.0.2"), GROUP)
    assert raw[6:8] != other[6:8]
    assert reason_of(raw, IPv4Address("10.0.0.2"), GROUP) == "checksum"
    assert reason_of(raw, SRC, IPv4Address("224.0.0.18")) == "checksum"
    assert reason_of(raw) == "checksum"  # cannot be checked without the IP addresses


def test_encode_refuses_what_the_wire_cannot_carry() -> None:
    with pytest.raises(ValueError):
        encode(Advert(2, 0, 100, VIPS))
    with pytest.raises(ValueError):
        encode(Advert(2, 50, 256, VIPS))
    with pytest.raises(ValueError):
        encode(Advert(2, 50, 100, VIPS, interval_cs=50))  # v2 carries whole seconds
    with pytest.raises(ValueError):
        encode(Advert(3, 50, 100, VIPS, interval_cs=4096))
    with pytest.raises(ValueError):
        encode(Advert(3, 50, 100, VIPS))  # v3 needs the pseudo-header addresses
    with pytest.raises(ValueError):
        encode(Advert(4, 50, 100, VIPS))


# -- round trips ----------------------------------------------------------------------------

v2_adverts = st.builds(
    Advert,
    version=st.just(2),
    vrid=st.integers(1, 255),
    priority=st.integers(0, 255),
    addresses=st.lists(addresses, max_size=20).map(tuple),
    interval_cs=st.integers(1, 255).map(lambda s: s * 100),
    auth_type=st.sampled_from([AUTH_NONE, AUTH_PASS]),
    auth_data=st.binary(min_size=8, max_size=8),
)
v3_adverts = st.builds(
    Advert,
    version=st.just(3),
    vrid=st.integers(1, 255),
    priority=st.integers(0, 255),
    addresses=st.lists(addresses, min_size=1, max_size=20).map(tuple),
    interval_cs=st.integers(1, 4095),
    auth_type=st.just(AUTH_NONE),
    auth_data=st.just(b""),
)


@deterministic
@given(v2_adverts)
def test_v2_round_trip(adv: Advert) -> None:
    assert decode(encode(adv)) == adv


@deterministic
@given(v3_adverts, addresses, addresses)
def test_v3_round_trip(adv: Advert, src: IPv4Address, dst: IPv4Address) -> None:
    assert decode(encode(adv, src, dst), src, dst) == adv


# -- scapy-built packets decoded by us ------------------------------------------------------


def test_decode_scapy_built_v2() -> None:
    raw = bytes(VRRP(vrid=42, priority=150, addrlist=["10.0.0.100", "10.0.0.101"],
                     authtype=1, adv=3, auth1=0x31313131, auth2=0))
    adv = decode(raw)
    assert adv == Advert(2, 42, 150, (IPv4Address("10.0.0.100"), IPv4Address("10.0.0.101")),
                         interval_cs=300, auth_type=AUTH_PASS, auth_data=b"1111\0\0\0\0")


def test_decode_scapy_built_v3_from_a_whole_datagram() -> None:
    wire = bytes(IP(src="192.0.2.1", dst="224.0.0.18", ttl=255)
                 / VRRPv3(vrid=51, priority=200, adv=50, addrlist=["192.0.2.100"]))
    dgram = parse_ipv4(wire)
    assert (dgram.src, dgram.dst) == (IPv4Address("192.0.2.1"), IPv4Address("224.0.0.18"))
    assert (dgram.ttl, dgram.proto) == (255, VRRP_PROTO)
    adv = decode(dgram.payload, dgram.src, dgram.dst)
    assert adv == Advert(3, 51, 200, (IPv4Address("192.0.2.100"),), interval_cs=50,
                         auth_type=AUTH_NONE, auth_data=b"")


def test_parse_ipv4_drops_ethernet_padding() -> None:
    """Case 8: a 40-byte datagram padded to a 60-byte frame (46-byte payload) still parses."""
    msg = encode(Advert(2, 50, 100, (VIPS[0],)))
    wire = bytes(IP(src=str(SRC), dst=str(GROUP), ttl=255, proto=VRRP_PROTO) / Raw(msg))
    assert len(wire) == 40
    dgram = parse_ipv4(wire + b"\0" * 6)
    assert dgram.payload == msg
    assert decode(dgram.payload) == Advert(2, 50, 100, (VIPS[0],))


@pytest.mark.parametrize("wire", [b"", b"\x45" * 19, b"\x65" + b"\0" * 39,
                                  bytes([0x44]) + b"\0" * 39])
def test_parse_ipv4_rejects_non_ipv4(wire: bytes) -> None:
    with pytest.raises(DecodeError) as err:
        parse_ipv4(wire)
    assert err.value.reason == "ip"


# -- malformed input: DecodeError with the right reason, nothing else -----------------------


def test_well_formed_hand_built_v2_decodes() -> None:
    assert decode(v2_raw()) == Advert(2, 50, 100, VIPS)


@pytest.mark.parametrize("data", [b"", b"\x21", v2_raw()[:7]])
def test_shorter_than_the_fixed_header(data: bytes) -> None:
    assert reason_of(data) == "length"


def test_truncated() -> None:
    """Case 8: length < 16 + 4 * count is discarded."""
    raw = v2_raw()
    for cut in range(8, len(raw)):
        assert reason_of(raw[:cut]) == "length"


def test_count_larger_than_the_data() -> None:
    assert reason_of(v2_raw(count=3)) == "length"
    assert reason_of(v2_raw(addrs=(), count=1)) == "length"


def test_v3_truncated() -> None:
    raw = v3_raw()
    assert reason_of(raw[:-1], SRC, GROUP) == "length"


@pytest.mark.parametrize("pad", [b"\0" * 6, b"\0" * 26, b"\xde\xad\xbe\xef"])
def test_padding_after_the_message_is_accepted(pad: bytes) -> None:
    """Case 8: trailing Ethernet padding is ignored."""
    assert decode(v2_raw() + pad) == Advert(2, 50, 100, VIPS)
    assert decode(v3_raw() + pad, SRC, GROUP) == Advert(3, 50, 100, VIPS, 100, AUTH_NONE, b"")


def test_bad_checksum() -> None:
    """Case 9."""
    good = v2_raw()
    ck = struct.unpack_from("!H", good, 6)[0]
    assert reason_of(v2_raw(csum=ck ^ 0x0100)) == "checksum"
    flipped = bytearray(good)
    flipped[-1] ^= 0x01  # the auth data is covered by the checksum too
    assert reason_of(bytes(flipped)) == "checksum"


@pytest.mark.parametrize("ptype", [0, 2, 3, 15])
def test_wrong_type(ptype: int) -> None:
    """Case 7: 'A packet with unknown type MUST be discarded' (RFC 3768 5.3.2)."""
    assert reason_of(v2_raw(vt=0x20 | ptype)) == "type"
    assert reason_of(v3_raw(vt=0x30 | ptype), SRC, GROUP) == "type"


@pytest.mark.parametrize("version", [0, 1, 4, 15])
def test_unknown_version(version: int) -> None:
    assert reason_of(v2_raw(vt=(version << 4) | 1)) == "version"


def test_vrid_zero_and_interval_zero() -> None:
    assert reason_of(v2_raw(vrid=0)) == "vrid"
    assert reason_of(v2_raw(adv_int=0)) == "interval"
    assert reason_of(v3_raw(interval_cs=0), SRC, GROUP) == "interval"


# -- property: decode never fails in any other way -----------------------------------------


def _decode_or_reason(data: bytes, src: IPv4Address | None, dst: IPv4Address | None) -> None:
    try:
        adv = decode(data, src, dst)
    except DecodeError as err:
        assert err.reason in REASONS
        return
    assert isinstance(adv, Advert)
    assert adv.version in (2, 3)
    assert 1 <= adv.vrid <= 255
    assert len(adv.addresses) == data[3]


@fuzz
@given(st.binary(max_size=120), st.none() | addresses, st.none() | addresses)
def test_decode_arbitrary_bytes(
    data: bytes, src: IPv4Address | None, dst: IPv4Address | None
) -> None:
    _decode_or_reason(data, src, dst)


@fuzz
@given(st.sampled_from([v2_raw(), v3_raw(), v2_raw(addrs=())]),
       st.lists(st.tuples(st.integers(0, 40), st.integers(0, 255)), max_size=4),
       st.integers(0, 40))
def test_decode_mutated_adverts(base: bytes, edits: list[tuple[int, int]], cut: int) -> None:
    """Near-valid packets reach the deeper checks that random bytes rarely get past."""
    data = bytearray(base)
    for pos, value in edits:
        if pos < len(data):
            data[pos] = value
    _decode_or_reason(bytes(data[: len(data) - cut]), SRC, GROUP)


@deterministic
@given(st.binary(max_size=80))
def test_parse_ipv4_arbitrary_bytes(data: bytes) -> None:
    try:
        dgram = parse_ipv4(data)
    except DecodeError as err:
        assert err.reason == "ip"
        return
    assert len(dgram.payload) <= len(data)

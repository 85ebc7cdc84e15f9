"""The IPVS netlink encoding, without a kernel.

Our bytes are decoded with pyroute2's own message classes (an independent decoder) where
pyroute2 types an attribute right, and checked byte by byte where it does not. The
pyroute2 0.9.7 defects that made us own the encoding are pinned here: if a pyroute2
upgrade fixes one, its test fails and tells us so.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import struct
from dataclasses import replace
from typing import Any

import pytest
from pyroute2.ipvs import AsyncIPVS, IPVSDest, IPVSService
from pyroute2.netlink.generic.ipvs import ipvsmsg

from ipvsctl import codec
from ipvsctl.diff import Kind, Op
from ipvsctl.kernel import IpvsKernel
from ipvsctl.model import AF_INET, AF_INET6, F_PERSISTENT, Dest, Service, ServiceKey

FAMILY = 0x2A


def pr_decode(data: bytes) -> Any:
    msg = ipvsmsg(data)
    msg.decode()
    return msg


def nested(msg: Any, name: str) -> dict[str, Any]:
    return dict(msg.get_attr(name)["attrs"])


def raw_service_attrs(data: bytes) -> dict[int, memoryview]:
    _kind, _flags, _seq, payload = next(codec.iter_messages(data))
    return codec.parse_attrs(codec.parse_attrs(payload, 4)[codec.A_SERVICE])


def pr_bytes(attrs: list[tuple[str, Any]], cmd: int = codec.NEW_SERVICE) -> bytes:
    msg = ipvsmsg()
    msg["cmd"] = cmd
    msg["version"] = 1
    msg["attrs"] = attrs
    msg.encode()
    return bytes(msg.data)


# --------------------------------------------------------------------------- our encoding

def test_v4_service_decodes_with_pyroute2() -> None:
    svc = Service(ServiceKey.inet("TCP", "10.0.0.1", 80), "rr", F_PERSISTENT, 300, 0xFFFFFF00)
    data = codec.service_msg(FAMILY, codec.NEW_SERVICE, svc, seq=7)
    kind, flags, seq, _ = next(codec.iter_messages(data))
    assert (kind, seq) == (FAMILY, 7)
    assert flags == codec.NLM_F_REQUEST | codec.NLM_F_ACK
    msg = pr_decode(data)
    assert msg["cmd"] == codec.NEW_SERVICE and msg["version"] == 1
    a = nested(msg, "IPVS_CMD_ATTR_SERVICE")
    assert a["IPVS_SVC_ATTR_AF"] == AF_INET
    assert a["IPVS_SVC_ATTR_PROTOCOL"] == socket.IPPROTO_TCP
    assert a["IPVS_SVC_ATTR_ADDR"] == "10.0.0.1"
    assert a["IPVS_SVC_ATTR_PORT"] == 80
    assert a["IPVS_SVC_ATTR_SCHED_NAME"] == "rr"
    assert a["IPVS_SVC_ATTR_TIMEOUT"] == 300
    assert a["IPVS_SVC_ATTR_NETMASK"] == "255.255.255.0"
    raw = raw_service_attrs(data)
    assert struct.unpack("=II", raw[codec.S_FLAGS]) == (F_PERSISTENT, 0xFFFFFFFF)


def test_v6_service_carries_a_prefix_length_netmask() -> None:
    svc = Service(ServiceKey.inet("UDP", "fd00::5", 53), "wlc", F_PERSISTENT, 60, 64)
    raw = raw_service_attrs(codec.service_msg(FAMILY, codec.NEW_SERVICE, svc, 1))
    assert bytes(raw[codec.S_AF]) == struct.pack("=H", AF_INET6)
    assert bytes(raw[codec.S_ADDR]) == socket.inet_pton(AF_INET6, "fd00::5")
    # The kernel compares the __be32 netmask as a plain int 1..128 for v6: host order.
    assert bytes(raw[codec.S_NETMASK]) == struct.pack("=I", 64)


def test_fwmark_service_has_af_and_netmask_and_no_address() -> None:
    svc = Service(ServiceKey.mark(5, AF_INET6), "rr", 0, 0, 128)
    raw = raw_service_attrs(codec.service_msg(FAMILY, codec.NEW_SERVICE, svc, 1))
    assert bytes(raw[codec.S_AF]) == struct.pack("=H", AF_INET6)
    assert bytes(raw[codec.S_FWMARK]) == struct.pack("=I", 5)
    assert codec.S_NETMASK in raw and codec.S_SCHED_NAME in raw and codec.S_TIMEOUT in raw
    assert codec.S_ADDR not in raw and codec.S_PORT not in raw


def test_delete_sends_only_the_key() -> None:
    svc = Service(ServiceKey.inet("TCP", "10.0.0.1", 80), "rr")
    raw = raw_service_attrs(codec.service_msg(FAMILY, codec.DEL_SERVICE, svc, 1))
    assert set(raw) == {codec.S_AF, codec.S_PROTOCOL, codec.S_ADDR, codec.S_PORT}


def test_dest_message_and_gue_port_in_network_order() -> None:
    key = ServiceKey.inet("TCP", "10.0.0.1", 80)
    d = Dest("10.0.1.1", 8080, AF_INET, fwd=2, weight=3, u_thresh=9, l_thresh=2,
             tun_type=1, tun_port=6080, tun_flags=1)
    data = codec.dest_msg(FAMILY, codec.NEW_DEST, key, d, 3)
    msg = pr_decode(data)
    a = nested(msg, "IPVS_CMD_ATTR_DEST")
    assert a["IPVS_DEST_ATTR_ADDR"] == "10.0.1.1"
    assert a["IPVS_DEST_ATTR_PORT"] == 8080
    assert a["IPVS_DEST_ATTR_FWD_METHOD"] == 2
    assert a["IPVS_DEST_ATTR_WEIGHT"] == 3
    assert (a["IPVS_DEST_ATTR_U_THRESH"], a["IPVS_DEST_ATTR_L_THRESH"]) == (9, 2)
    assert a["IPVS_DEST_ATTR_ADDR_FAMILY"] == AF_INET
    _k, _f, _s, payload = next(codec.iter_messages(data))
    raw = codec.parse_attrs(codec.parse_attrs(payload, 4)[codec.A_DEST])
    assert bytes(raw[codec.D_TUN_PORT]) == b"\x17\xc0"  # 6080, big-endian (nla_get_be16)
    svc_key = nested(msg, "IPVS_CMD_ATTR_SERVICE")
    assert "IPVS_SVC_ATTR_SCHED_NAME" not in svc_key  # a dest op names the service by key


def test_decode_round_trip_of_a_kernel_like_reply() -> None:
    """A dump reply: 16-byte address, HASHED flag set, stats64: decoded to the model."""
    stats = b"".join(codec.nla(i + 1, struct.pack("=Q", 10 * (i + 1))) for i in range(10))
    attrs = (codec.nla(codec.S_AF, struct.pack("=H", AF_INET))
             + codec.nla(codec.S_PROTOCOL, struct.pack("=H", 6))
             + codec.nla(codec.S_ADDR, socket.inet_aton("10.9.9.9") + b"\0" * 12)
             + codec.nla(codec.S_PORT, struct.pack(">H", 443))
             + codec.nla(codec.S_SCHED_NAME, b"wrr\0")
             + codec.nla(codec.S_FLAGS, struct.pack("=II", 0x2 | F_PERSISTENT, 0xFFFFFFFF))
             + codec.nla(codec.S_TIMEOUT, struct.pack("=I", 30))
             + codec.nla(codec.S_NETMASK, struct.pack(">I", 0xFFFF0000))
             + codec.nla(codec.S_STATS64 | codec.NLA_F_NESTED, stats))
    data = codec.message(FAMILY, codec.NEW_SERVICE, codec.nla(codec.A_SERVICE, attrs), 1, 0)
    _k, _f, _s, payload = next(codec.iter_messages(data))
    svc = codec.decode_service(payload)
    assert svc == Service(ServiceKey.inet("TCP", "10.9.9.9", 443), "wrr", F_PERSISTENT, 30,
                          0xFFFF0000)
    assert svc.stats.conns == 10 and svc.stats.outbps == 100


def kernel_dest_reply(d: Dest, conns: int = 0, swap: bool = False) -> memoryview:
    """A GET_DEST dump reply as ip_vs_genl_fill_dest (6.1) writes it: 16-byte address, the
    tunnel triple and the counters always, then both stats nests."""
    def stats(fmt: str) -> bytes:
        return b"".join(codec.nla(i + 1, struct.pack(fmt, conns * (i + 1))) for i in range(10))

    fwd_weight = [codec.nla(codec.D_FWD_METHOD, struct.pack("=I", d.fwd)),
                  codec.nla(codec.D_WEIGHT, struct.pack("=I", d.weight))]
    attrs = b"".join([
        codec.nla(codec.D_ADDR, socket.inet_pton(d.af, d.addr).ljust(16, b"\0")),
        codec.nla(codec.D_PORT, struct.pack(">H", d.port)),
        *(fwd_weight[::-1] if swap else fwd_weight),
        codec.nla(codec.D_TUN_TYPE, bytes([d.tun_type])),
        codec.nla(codec.D_TUN_PORT, struct.pack(">H", d.tun_port)),
        codec.nla(codec.D_TUN_FLAGS, struct.pack("=H", d.tun_flags)),
        *(codec.nla(k, struct.pack("=I", v)) for k, v in (
            (codec.D_U_THRESH, d.u_thresh), (codec.D_L_THRESH, d.l_thresh),
            (codec.D_ACTIVE_CONNS, conns), (codec.D_INACT_CONNS, 0),
            (codec.D_PERSIST_CONNS, 0))),
        codec.nla(codec.D_ADDR_FAMILY, struct.pack("=H", d.af)),
        codec.nla(codec.D_STATS | codec.NLA_F_NESTED, stats("=I")),
        codec.nla(codec.D_STATS64 | codec.NLA_F_NESTED, stats("=Q"))])
    data = codec.message(FAMILY, codec.NEW_DEST, codec.nla(codec.A_DEST, attrs), 1, 0)
    return next(codec.iter_messages(data))[3]


def test_dump_replies_of_one_layout_are_read_in_one_unpack_and_read_right() -> None:
    dests = [Dest(f"10.8.0.{i}", 80 + i, fwd=i % 4, weight=i, u_thresh=9 * i, l_thresh=i)
             for i in range(1, 6)]
    dests.append(Dest("10.8.1.1", 8080, fwd=2, weight=4, tun_type=1, tun_port=6080,
                      tun_flags=1))
    replies = [kernel_dest_reply(d, conns=i) for i, d in enumerate(dests)]
    assert len({len(r) for r in replies}) == 1
    for i, (d, reply) in enumerate(zip(dests, replies, strict=True)):
        got = codec.decode_dest(reply, AF_INET)
        assert got == d and got.active_conns == i
        assert got.stats.conns == i and got.stats.outbps == 10 * i
        assert codec.decode_dest(reply, AF_INET, stats=False).stats.conns == 0
    # The first reply taught the layout; the others went through it.
    assert codec._DEST.layouts[len(replies[0])] is not None
    # Same length, attributes in another order: the header check sends it the slow way.
    odd = kernel_dest_reply(dests[2], swap=True)
    assert len(odd) == len(replies[0])
    assert codec._DEST.layouts[len(odd)].read(odd) is None  # type: ignore[union-attr]
    assert codec.decode_dest(odd, AF_INET) == dests[2]
    v6 = Dest("fd00:8::1", 443, AF_INET6, fwd=3, weight=2)
    assert codec.decode_dest(kernel_dest_reply(v6), AF_INET6) == v6


def test_a_resync_reads_unchanged_dests_from_its_memo() -> None:
    d = Dest("10.9.0.1", 80, weight=3, u_thresh=5)
    reply = kernel_dest_reply(d, conns=5)
    codec.decode_dest(reply, AF_INET)  # the layout is known from here on
    memo = codec.DestMemo()
    first = memo.decode(reply, AF_INET)
    assert first == d and first.active_conns == 0  # no counters without stats
    memo.next_dump()
    again = memo.decode(kernel_dest_reply(d, conns=9), AF_INET)  # only counters moved
    assert again is first
    memo.next_dump()
    assert memo.decode(kernel_dest_reply(replace(d, weight=4)), AF_INET) == \
        replace(d, weight=4)
    memo.next_dump()  # the last dump did not see `d`: forgotten
    assert memo.decode(reply, AF_INET) is not first


# --------------------------------------------------------------------------- pyroute2 0.9.7

def test_pyroute2_update_sends_a_delete() -> None:
    sent: list[Any] = []

    class Capture(AsyncIPVS):
        async def _do_request(self, msg: Any, msg_flags: int = 0) -> list[Any]:
            sent.append(msg)
            return []

    sock = Capture()
    try:
        svc = IPVSService(addr="10.0.0.1", port=80, protocol=socket.IPPROTO_TCP)
        asyncio.run(sock.service("update", svc))
        asyncio.run(sock.dest("update", svc, IPVSDest(addr="10.0.1.1", port=80)))
    finally:
        sock.close()
    assert [m["cmd"] for m in sent] == [codec.DEL_SERVICE, codec.DEL_DEST]


def test_pyroute2_fwmark_service_lacks_af_and_netmask() -> None:
    svc = IPVSService(fwmark=5)
    raw = raw_service_attrs(pr_bytes([("IPVS_CMD_ATTR_SERVICE", svc.dump_nla())]))
    assert codec.S_FWMARK in raw
    assert codec.S_AF not in raw and codec.S_NETMASK not in raw  # the kernel: EINVAL


def test_pyroute2_v6_service_lacks_netmask() -> None:
    svc = IPVSService(addr="fd00::1", port=80, protocol=socket.IPPROTO_TCP)
    raw = raw_service_attrs(pr_bytes([("IPVS_CMD_ATTR_SERVICE", svc.dump_nla())]))
    assert bytes(raw[codec.S_AF]) == struct.pack("=H", AF_INET6)
    assert codec.S_NETMASK not in raw  # the kernel: EINVAL


def test_pyroute2_tun_port_goes_out_in_host_order() -> None:
    svc = IPVSService(addr="10.0.0.1", port=80, protocol=socket.IPPROTO_TCP)
    dest = IPVSDest(addr="10.0.1.1", port=80, fwd_method=2, tun_type=1, tun_port=6080)
    data = pr_bytes([("IPVS_CMD_ATTR_SERVICE", svc.dump_key()),
                     ("IPVS_CMD_ATTR_DEST", dest.dump_nla())], codec.NEW_DEST)
    _k, _f, _s, payload = next(codec.iter_messages(data))
    raw = codec.parse_attrs(codec.parse_attrs(payload, 4)[codec.A_DEST])
    assert int.from_bytes(raw[codec.D_TUN_PORT], "big") == 49175  # not 6080


def test_pyroute2_read_back_keeps_stale_defaults() -> None:
    """A NAT (MASQ = 0) dest read back through IPVSDest.from_message claims DR (3)."""
    key = ServiceKey.inet("TCP", "10.0.0.1", 80)
    data = codec.dest_msg(FAMILY, codec.NEW_DEST, key, Dest("10.0.1.1", 80, fwd=0), 1)
    back = IPVSDest.from_message(pr_decode(data))
    assert back["IPVS_DEST_ATTR_FWD_METHOD"] == 0
    assert back["fwd_method"] == 3
    _k, _f, _s, payload = next(codec.iter_messages(data))
    assert codec.decode_dest(payload, AF_INET).fwd == 0  # ours reads the wire


# --------------------------------------------------------------------------- batching

class FakeSock:
    """Records datagrams; answers as the kernel's netlink_rcv_skb does: an NLMSG_ERROR for
    each request that failed (scripted errno per op index) or asked for an ack."""

    def __init__(self, errnos: dict[int, int]) -> None:
        self.sent: list[bytes] = []
        self.errnos = errnos  # op index -> errno
        self.inbox: list[bytes] = []
        self.count = 0

    def sendall(self, data: bytes) -> None:
        self.sent.append(data)
        for _kind, flags, seq, _payload in codec.iter_messages(data):
            code = self.errnos.get(self.count, 0)
            self.count += 1
            if code or flags & codec.NLM_F_ACK:  # one datagram per reply, as netlink
                self.inbox.append(struct.pack("=IHHII", 36, codec.NLMSG_ERROR, 0, seq, 0)
                                  + struct.pack("=i", -code)
                                  + struct.pack("=IHHII", 0, 0, 0, seq, 0))

    def recv_into(self, buf: bytearray) -> int:
        data = self.inbox.pop(0)
        buf[:len(data)] = data
        return len(data)


def fake_kernel(errnos: dict[int, int]) -> tuple[IpvsKernel, FakeSock]:
    k = IpvsKernel.__new__(IpvsKernel)
    sock = FakeSock(errnos)
    k.family, k.sock, k.seq = FAMILY, sock, 1  # type: ignore[assignment]
    k._buf = bytearray(4096)
    k._view = memoryview(k._buf)
    return k, sock


def test_many_ops_share_one_datagram_and_errors_map_to_their_op() -> None:
    svc = Service(ServiceKey.inet("TCP", "10.0.0.1", 80), "rr")
    ops = [Op(Kind.ADD_SERVICE, svc)] + [Op(Kind.ADD_DEST, svc, Dest(f"10.0.1.{i}", 80))
                                          for i in range(1, 101)]
    k, sock = fake_kernel({0: errno.EEXIST, 42: errno.ERANGE})
    result = k.apply(ops)
    assert len(sock.sent) == 1  # 101 requests, one sendmsg
    assert len(list(codec.iter_messages(sock.sent[0]))) == 101
    assert result.done == 99
    assert [(e.errno, e.op) for e in result.errors] == [(errno.EEXIST, ops[0]),
                                                        (errno.ERANGE, ops[42])]
    assert "already exists" in str(result.errors[0])
    # Only the last request asks for an ack: 2 errors + 1 ack read back, not 101 acks.
    flags = [f for _k, f, _s, _p in codec.iter_messages(sock.sent[0])]
    assert [f & codec.NLM_F_ACK for f in flags] == [0] * 100 + [codec.NLM_F_ACK]
    assert not sock.inbox


def test_a_failed_last_request_is_its_own_ack() -> None:
    svc = Service(ServiceKey.inet("TCP", "10.0.0.1", 80), "rr")
    ops = [Op(Kind.ADD_DEST, svc, Dest(f"10.0.1.{i}", 80)) for i in range(1, 4)]
    k, _ = fake_kernel({2: errno.EEXIST})
    result = k.apply(ops)
    assert result.done == 2 and [e.op for e in result.errors] == [ops[2]]


def test_large_batches_are_split_under_the_socket_buffer() -> None:
    svc = Service(ServiceKey.inet("TCP", "10.0.0.1", 80), "rr")
    ops = [Op(Kind.ADD_DEST, svc, Dest(f"10.{i // 250}.{i % 250}.1", 80)) for i in range(3000)]
    k, sock = fake_kernel({})
    assert k.apply(ops).done == 3000
    assert 2 <= len(sock.sent) <= 10
    assert all(len(d) <= 64 * 1024 for d in sock.sent)
    # Each datagram ends with the one request that asks for an ack.
    for data in sock.sent:
        flags = [f & codec.NLM_F_ACK for _k, f, _s, _p in codec.iter_messages(data)]
        assert flags[-1] and not any(flags[:-1])


@pytest.mark.parametrize("code, kind, text", [
    (errno.ESRCH, Kind.EDIT_SERVICE, "no such service"),
    (errno.ENOENT, Kind.ADD_SERVICE, "unknown scheduler 'nosuch'"),
    (errno.ENOENT, Kind.DEL_DEST, "no such destination"),
])
def test_errno_meanings(code: int, kind: Kind, text: str) -> None:
    svc = Service(ServiceKey.inet("TCP", "10.0.0.1", 80), "nosuch")
    op = Op(kind, svc, Dest("10.0.1.1", 80) if kind is Kind.DEL_DEST else None)
    k, _ = fake_kernel({0: code})
    (err,) = k.apply([op]).errors
    assert text in str(err) and err.errno == code


def test_no_ipvs_is_one_line_that_says_what_to_load(monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from pyroute2.netlink.exceptions import NetlinkError
    from pyroute2.netlink.generic import GenericNetlinkSocket

    from ipvsctl import cli

    def no_family(self: Any, *args: Any, **kwargs: Any) -> None:
        raise NetlinkError(errno.ENOENT)

    monkeypatch.setattr(GenericNetlinkSocket, "bind", no_family)
    assert cli.main(["list"]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert "IPVS is not available" in err and "modprobe ip_vs" in err

"""The kernel adapter, operation by operation, checked with `ipvsadm` (never with itself)."""

from __future__ import annotations

import errno
from collections.abc import Callable

import pytest
from ipvs_oracle import kernel_schedulers

from ipvsctl.diff import Kind, Op
from ipvsctl.kernel import IpvsKernel
from ipvsctl.model import (
    AF_INET6,
    F_ONEPACKET,
    F_PERSISTENT,
    F_SCHED1,
    F_SCHED2,
    Dest,
    Service,
    ServiceKey,
)

Adm = Callable[..., str]


def ok(kernel: IpvsKernel, *ops: Op) -> None:
    result = kernel.apply(ops)
    assert not result.errors, [str(e) for e in result.errors]
    assert result.done == len(ops)


def lines(text: str) -> list[str]:
    return [" ".join(line.split()) for line in text.splitlines()[3:]]


def test_services_of_every_shape_and_scheduler(kernel: IpvsKernel, ipvsadm: Adm) -> None:
    v4 = [Service(ServiceKey.inet("TCP", "10.1.0.1", 100 + i), sched)
          for i, sched in enumerate(kernel_schedulers())]
    others = [
        Service(ServiceKey.inet("UDP", "10.1.0.2", 53), "rr", F_ONEPACKET),
        Service(ServiceKey.inet("SCTP", "10.1.0.3", 9), "wrr"),
        Service(ServiceKey.inet("TCP", "fd00::1", 443), "lc", F_PERSISTENT, 300, 64),
        Service(ServiceKey.mark(7), "sh", F_PERSISTENT | F_SCHED1 | F_SCHED2, 60, 0xFFFFFF00),
        Service(ServiceKey.mark(8, AF_INET6), "mh", 0, 0, 128),
    ]
    ok(kernel, *(Op(Kind.ADD_SERVICE, s) for s in v4 + others))
    got = lines(ipvsadm("-Ln"))
    for i, sched in enumerate(kernel_schedulers()):
        assert f"TCP 10.1.0.1:{100 + i} {sched}" in got
    assert "UDP 10.1.0.2:53 rr ops" in got
    assert "SCTP 10.1.0.3:9 wrr" in got
    assert "TCP [fd00::1]:443 lc persistent 300 mask 64" in got
    assert "FWM 7 sh (sh-fallback,sh-port) persistent 60 mask 255.255.255.0" in got
    assert "FWM 8 IPv6 mh" in got
    # Read-back: the dump gives back exactly what was written (no stale defaults).
    dumped = kernel.dump().services
    for svc in v4 + others:
        assert dumped[svc.key] == svc


def test_dests_methods_weights_thresholds_and_tunnels(kernel: IpvsKernel, ipvsadm: Adm) -> None:
    svc = Service(ServiceKey.inet("TCP", "10.2.0.1", 80), "wrr")
    mark = Service(ServiceKey.mark(9), "rr")
    dests = [Dest("10.2.1.1", 8080, fwd=0, weight=5, u_thresh=100, l_thresh=10),
             Dest("10.2.1.2", 80, fwd=3, weight=0),
             Dest("10.2.1.3", 80, fwd=2, weight=7, tun_type=1, tun_port=6080, tun_flags=1)]
    ok(kernel, Op(Kind.ADD_SERVICE, svc), Op(Kind.ADD_SERVICE, mark),
       *(Op(Kind.ADD_DEST, svc, d) for d in dests),
       Op(Kind.ADD_DEST, mark, Dest("10.2.1.4", 0, fwd=3, weight=2)))
    got = lines(ipvsadm("-Ln"))
    assert "-> 10.2.1.1:8080 Masq 5 0 0" in got
    assert "-> 10.2.1.2:80 Route 0 0 0" in got
    assert "-> 10.2.1.3:80 Tunnel 7 0 0" in got
    assert "-> 10.2.1.4:0 Route 2 0 0" in got
    assert "-> 10.2.1.1:8080 100 10 0 0" in lines(ipvsadm("-Ln", "--thresholds"))
    tun = [line for line in lines(ipvsadm("-Ln", "--tun-info")) if "10.2.1.3" in line]
    # pyroute2 sends TUN_PORT in host order; 6080 would come back as 49175.
    assert tun and "gue" in tun[0].lower() and "6080" in tun[0], tun
    assert sorted(kernel.dump().dests_of(svc.key).values(), key=lambda d: d.addr) == dests


def test_edit_and_delete(kernel: IpvsKernel, ipvsadm: Adm) -> None:
    svc = Service(ServiceKey.inet("TCP", "10.3.0.1", 80), "rr")
    d1, d2 = Dest("10.3.1.1", 80, weight=1), Dest("10.3.1.2", 80, weight=1)
    ok(kernel, Op(Kind.ADD_SERVICE, svc), Op(Kind.ADD_DEST, svc, d1), Op(Kind.ADD_DEST, svc, d2))
    edited = Service(svc.key, "wlc", F_PERSISTENT, 120, 0xFFFF0000)
    ok(kernel, Op(Kind.EDIT_SERVICE, edited),
       Op(Kind.EDIT_DEST, edited, Dest("10.3.1.1", 80, fwd=3, weight=9)),
       Op(Kind.DEL_DEST, edited, d2))
    got = lines(ipvsadm("-Ln"))
    assert "TCP 10.3.0.1:80 wlc persistent 120 mask 255.255.0.0" in got
    assert "-> 10.3.1.1:80 Route 9 0 0" in got
    assert not any("10.3.1.2" in line for line in got)
    ok(kernel, Op(Kind.DEL_SERVICE, edited))
    assert lines(ipvsadm("-Ln")) == []


def test_global_timeouts(kernel: IpvsKernel, ipvsadm: Adm) -> None:
    kernel.set_timeouts(tcp=901, tcpfin=121, udp=301)
    assert "Timeout (tcp tcpfin udp): 901 121 301" in ipvsadm("-L", "--timeout")
    kernel.set_timeouts(udp=55)  # the others keep their values
    assert "Timeout (tcp tcpfin udp): 901 121 55" in ipvsadm("-L", "--timeout")
    assert kernel.timeouts() == (901, 121, 55)


def test_errors_are_mapped_to_meaning(kernel: IpvsKernel, ipvsadm: Adm) -> None:
    svc = Service(ServiceKey.inet("TCP", "10.4.0.1", 80), "rr")
    missing = Service(ServiceKey.inet("TCP", "10.4.0.9", 80), "rr")
    ok(kernel, Op(Kind.ADD_SERVICE, svc))
    result = kernel.apply([
        Op(Kind.ADD_SERVICE, svc),                                         # EEXIST
        Op(Kind.EDIT_SERVICE, missing),                                    # ESRCH
        Op(Kind.DEL_DEST, svc, Dest("10.4.1.1", 80)),                      # ENOENT (dest)
        Op(Kind.ADD_SERVICE, Service(ServiceKey.inet("TCP", "10.4.0.2", 80), "nosuch")),
        Op(Kind.ADD_DEST, svc, Dest("10.4.1.2", 80, u_thresh=5, l_thresh=50)),  # ERANGE
        Op(Kind.ADD_DEST, svc, Dest("10.4.1.3", 80, weight=3)),           # still applied
    ])
    codes = [e.errno for e in result.errors]
    assert codes == [errno.EEXIST, errno.ESRCH, errno.ENOENT, errno.ENOENT, errno.ERANGE]
    msgs = [str(e) for e in result.errors]
    assert "already exists" in msgs[0]
    assert "no such service" in msgs[1]
    assert "no such destination" in msgs[2]
    assert "unknown scheduler 'nosuch'" in msgs[3] and "ip_vs_nosuch" in msgs[3]
    assert "lthreshold > uthreshold" in msgs[4]
    assert result.done == 1
    got = lines(ipvsadm("-Ln"))
    assert "-> 10.4.1.3:80 Masq 3 0 0" in got
    assert not any("10.4.0.2" in line or "10.4.1.2" in line for line in got)


@pytest.mark.parametrize("batch", [500])
def test_batched_apply_of_many_ops(kernel: IpvsKernel, ipvsadm: Adm, batch: int) -> None:
    """Hundreds of ops go out in a few datagrams; every ack is accounted for."""
    ops: list[Op] = []
    for i in range(batch // 5):
        svc = Service(ServiceKey.inet("TCP", f"10.5.{i // 200}.{i % 200 + 1}", 80), "rr")
        ops.append(Op(Kind.ADD_SERVICE, svc))
        ops += [Op(Kind.ADD_DEST, svc, Dest(f"10.6.{i % 250}.{j + 1}", 80)) for j in range(4)]
    result = kernel.apply(ops)
    assert not result.errors and result.done == len(ops)
    text = ipvsadm("-Ln")
    assert text.count("TCP  ") == batch // 5
    assert text.count("  -> ") - 1 == batch // 5 * 4  # less the title line


def test_errors_across_datagrams_and_a_failing_last_op(kernel: IpvsKernel, ipvsadm: Adm) -> None:
    """Only the last request of a datagram asks for an ack: the kernel reports failures
    unasked, in every datagram, and a failing last request is its own ack."""
    svc = Service(ServiceKey.inet("TCP", "10.7.0.1", 80), "rr")
    dests = [Dest(f"10.7.{i // 250}.{i % 250 + 1}", 80) for i in range(1500)]
    ok(kernel, Op(Kind.ADD_SERVICE, svc), *(Op(Kind.ADD_DEST, svc, d) for d in dests[::300]))
    ops = [Op(Kind.ADD_DEST, svc, d) for d in dests] + [Op(Kind.ADD_SERVICE, svc)]
    result = kernel.apply(ops)  # ~150 KB: three datagrams
    assert [e.op for e in result.errors] == [ops[i] for i in range(0, 1500, 300)] + [ops[-1]]
    assert {e.errno for e in result.errors} == {errno.EEXIST}
    assert result.done == 1495
    assert ipvsadm("-Ln").count("  -> ") - 1 == 1500  # less the title line

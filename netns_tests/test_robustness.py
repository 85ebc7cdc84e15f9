"""Unicast peers, and a speaker under spoofed and malformed VRRP traffic.

The attacker is the client host: it sends bounded bursts of crafted packets with scapy.
A packet that passed validation by mistake would show up as a VIP move; a crash as a dead
process.
"""

from __future__ import annotations

import shutil
import sys
import textwrap
import time

import pytest
from decode import vrrp_adverts

from pyvrrp.lab.speakers import VIP, Instance, Speaker
from pyvrrp.lab.topology import Lab, wait_for

ELECTION = 8.0
PEERS = {"node1": "10.0.0.200", "node2": "10.0.0.201"}


def unicast(lab: Lab, host: str, kind: str, priority: int, state: str = "BACKUP") -> Speaker:
    peer = next(a for h, a in PEERS.items() if h != host)
    inst = Instance(priority=priority, state=state, router_id=host,
                    unicast_src_ip=PEERS[host], unicast_peers=[peer])
    return Speaker(lab, host, kind, inst).start()


@pytest.mark.parametrize("peer_kind", [
    "pyvrrp",
    pytest.param("keepalived", marks=pytest.mark.skipif(
        shutil.which("keepalived") is None, reason="keepalived not installed")),
])
def test_unicast_peers_elect_fail_over_and_preempt(lab: Lab, peer_kind: str) -> None:
    with lab.capture(filter="ip proto 112") as cap:
        n1 = unicast(lab, "node1", "pyvrrp", 100, "MASTER")
        assert wait_for(lambda: lab.holders(VIP) == ["node1"], ELECTION), n1.log_text()
        n2 = unicast(lab, "node2", peer_kind, 80)
        time.sleep(4.5)
        assert lab.holders(VIP) == ["node1"], n2.log_text()
    ads = vrrp_adverts(cap.packets())
    assert ads and all(a.src == "10.0.0.200" and a.checksum_ok for a in ads)
    dsts = {p["IP"].dst for p in cap.packets() if p.haslayer("IP")}
    assert dsts == {"10.0.0.201"}, "unicast adverts go to the peer only"
    n1.stop()
    assert wait_for(lambda: lab.holders(VIP) == ["node2"], 3.0), n2.log_text()
    n1 = unicast(lab, "node1", "pyvrrp", 100, "MASTER")
    assert wait_for(lambda: lab.holders(VIP) == ["node1"], ELECTION), n1.log_text()


ATTACK = textwrap.dedent("""
    import random, sys
    from scapy.all import IP, VRRP, Ether, Raw, conf, fuzz, sendp
    conf.verb = 0
    random.seed(7)
    spoof = "10.0.0.250"
    g = "233.6.6.6"
    pw = b"1111"
    good = dict(vrid=50, addrlist=["10.0.0.100"], authtype=1, auth1=int.from_bytes(pw), adv=1)
    pkts = [
        # Each of these would make the master yield at once if it were accepted.
        IP(src=spoof, dst=g, ttl=254) / VRRP(priority=254, **good),           # TTL not 255
        IP(src=spoof, dst=g, ttl=255) / VRRP(priority=254, **{**good, "auth1": 0}),  # password
        IP(src=spoof, dst=g, ttl=255) / VRRP(priority=254, **{**good, "adv": 3}),    # interval
        IP(src=spoof, dst=g, ttl=255) / VRRP(priority=254, chksum=0x1234, **good),   # checksum
        IP(src=spoof, dst=g, ttl=255) / VRRP(priority=254, version=3, **good),       # version
        IP(src=spoof, dst=g, ttl=255) / VRRP(priority=254, type=2, **good),          # type
        IP(src=spoof, dst=g, ttl=255) / VRRP(priority=254, **{**good, "addrlist": ["10.0.0.9"]}),
        IP(src=spoof, dst=g, ttl=255, proto=112) / Raw(bytes(VRRP(priority=254, **good))[:11]),
    ]
    n = int(sys.argv[1])
    if n < 0:  # the control: one well-formed higher-priority advert
        sendp(Ether(dst="01:00:5e:06:06:06") / IP(src=spoof, dst=g, ttl=255)
              / VRRP(priority=254, **good), iface="eth0")
        sys.exit()
    for i in range(n):
        pkts.append(IP(src=spoof, dst=g, ttl=255, proto=112) / Raw(
            bytes(random.getrandbits(8) for _ in range(random.randrange(0, 80)))))
        pkts.append(IP(src=spoof, dst=g, ttl=255) / fuzz(VRRP(vrid=50)))
    for _ in range(3):
        sendp([Ether(dst="01:00:5e:06:06:06") / p for p in pkts], iface="eth0", inter=0.002)
""")


def test_spoofed_and_malformed_adverts_change_nothing_and_crash_nothing(lab: Lab) -> None:
    n1 = Speaker(lab, "node1", "pyvrrp", Instance(priority=100, state="MASTER")).start()
    assert wait_for(lambda: lab.holders(VIP) == ["node1"], ELECTION)
    n2 = Speaker(lab, "node2", "pyvrrp", Instance(priority=80)).start()
    time.sleep(1.5)
    lab.run("client", sys.executable, "-c", ATTACK, "150", timeout=120)
    time.sleep(1.0)
    assert n1.proc is not None and n1.proc.poll() is None, n1.log_text()
    assert n2.proc is not None and n2.proc.poll() is None, n2.log_text()
    assert lab.holders(VIP) == ["node1"], n2.log_text()
    assert "Traceback" not in n1.log_text() + n2.log_text()
    # Control: the same path with one well-formed advert is obeyed (PASS is no security),
    # so the packets above did reach the speakers and were refused on their merits.
    lab.run("client", sys.executable, "-c", ATTACK, "-1", timeout=60)
    assert wait_for(lambda: "node1" not in lab.holders(VIP), 2.0), n1.log_text()

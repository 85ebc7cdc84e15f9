"""pyvrrp end to end on the seed's two directors, observed from outside.

Who holds the VIP is read with `ip addr`; adverts and GARPs are decoded from a tcpdump
capture on the bridge with scapy; the client's ARP table shows which MAC it will use.
"""

from __future__ import annotations

import time

from decode import garps, vrrp_adverts

from pyvrrp.core.timers import master_down_interval, skew_time
from pyvrrp.lab.speakers import VIP, Instance, Speaker
from pyvrrp.lab.topology import Lab, wait_for

# MDI(100) is 3.6 s; leave room for Python start-up and a loaded CI machine.
ELECTION = 8.0
SLACK = 0.1  # the allowance around the RFC bound


def pyvrrp(lab: Lab, host: str, **kw: object) -> Speaker:
    return Speaker(lab, host, "pyvrrp", Instance(router_id=host, **kw)).start()  # type: ignore[arg-type]


def wait_master(sp: Speaker, timeout: float = ELECTION) -> None:
    assert wait_for(sp.holds_vip, timeout), f"{sp.host} never took the VIP:\n{sp.log_text()}"


def test_initial_election_and_advert_on_the_wire(lab: Lab) -> None:
    with lab.capture() as cap:
        n1 = pyvrrp(lab, "node1", priority=100, state="MASTER")
        n2 = pyvrrp(lab, "node2", priority=80)
        wait_master(n1)
        time.sleep(2.5)
    assert lab.holders(VIP) == ["node1"]
    assert not n2.holds_vip()
    assert "10.0.0.100/24" in lab.ipv4_addrs("node1")
    label = lab.run("node1", "ip", "-4", "addr", "show", "label", "eth0:1").stdout
    assert VIP in label
    ads = vrrp_adverts(cap.packets())
    assert ads, "no advert captured"
    assert {a.src for a in ads} == {"10.0.0.200"}, "only the master may advertise"
    for ad in ads:
        assert (ad.vrid, ad.priority, ad.ttl, ad.advert_int) == (50, 100, 255, 1)
        assert ad.checksum_ok
        assert ad.addrs == [VIP]
        assert ad.vrrp.version == 2 and ad.vrrp.type == 1
        assert ad.vrrp.authtype == 1 and ad.vrrp.auth1 == int.from_bytes(b"1111")
    gaps = [b.time - a.time for a, b in zip(ads, ads[1:], strict=False)]
    assert gaps and all(abs(g - 1.0) < 0.05 for g in gaps), gaps
    n1.stop()
    n2.stop()


def test_hard_failure_takeover_within_master_down_interval_and_preemption(lab: Lab) -> None:
    n1 = pyvrrp(lab, "node1", priority=100, state="MASTER")
    n2 = pyvrrp(lab, "node2", priority=80)
    wait_master(n1)
    time.sleep(1.5)
    with lab.capture() as cap:
        time.sleep(0.5)
        lab.cut_link("node1")
        wait_master(n2)
        time.sleep(0.3)
    ads = vrrp_adverts(cap.packets())
    last_n1 = max(a.time for a in ads if a.src == "10.0.0.200")
    first_n2 = min(a.time for a in ads if a.src == "10.0.0.201")
    bound = master_down_interval(80, 1.0, 2)
    assert abs((first_n2 - last_n1) - bound) <= SLACK, (first_n2 - last_n1, bound)
    # Link back: the higher priority master preempts, the VIP goes home.
    with lab.capture() as cap:
        lab.restore_link("node1")
        assert wait_for(lambda: lab.holders(VIP) == ["node1"], ELECTION), lab.holders(VIP)
        time.sleep(2.5)
    late = vrrp_adverts(cap.packets())[-2:]
    assert late and all(a.src == "10.0.0.200" for a in late)


def test_graceful_stop_takeover_after_skew_time_and_back(lab: Lab) -> None:
    n1 = pyvrrp(lab, "node1", priority=100, state="MASTER")
    n2 = pyvrrp(lab, "node2", priority=80)
    wait_master(n1)
    time.sleep(1.5)
    with lab.capture() as cap:
        assert n1.stop() == 0
        wait_master(n2, 3)
        time.sleep(0.3)
    assert not n1.holds_vip()
    ads = vrrp_adverts(cap.packets())
    zero = [a for a in ads if a.src == "10.0.0.200" and a.priority == 0]
    assert len(zero) == 1, "exactly one priority-0 advert on stop"
    first_n2 = min(a.time for a in ads if a.src == "10.0.0.201")
    delay = first_n2 - zero[0].time
    assert abs(delay - skew_time(80, 1.0, 2)) <= SLACK, delay
    # Restart: node1 discards node2's lower adverts and preempts after its own MDI.
    n1 = pyvrrp(lab, "node1", priority=100, state="MASTER")
    assert wait_for(lambda: lab.holders(VIP) == ["node1"], ELECTION), n1.log_text()


def test_nopreempt_leaves_the_lower_priority_master_alone(lab: Lab) -> None:
    n2 = pyvrrp(lab, "node2", priority=80)
    wait_master(n2)
    n1 = pyvrrp(lab, "node1", priority=100, nopreempt=True)
    # Without nopreempt node1 would take over after MDI(100) = 3.6 s; give it 6 s.
    time.sleep(6)
    assert lab.holders(VIP) == ["node2"], n1.log_text()
    # It is a live backup: when node2 leaves, node1 takes over.
    n2.stop()
    wait_master(n1, 3)


def test_preempt_delay_postpones_preemption(lab: Lab) -> None:
    n2 = pyvrrp(lab, "node2", priority=80)
    wait_master(n2)
    with lab.capture() as cap:
        started = time.time()
        pyvrrp(lab, "node1", priority=100, preempt_delay=3)
        assert wait_for(lambda: lab.holders(VIP) == ["node1"], 15)
        time.sleep(0.2)
    first_n1 = min(a.time for a in vrrp_adverts(cap.packets()) if a.src == "10.0.0.200")
    plain = master_down_interval(100, 1.0, 2)
    took = first_n1 - started
    # keepalived: preemption only after the delay, then a full advert timeout.
    assert took >= plain + 3 - 0.2, took
    assert took <= plain + 3 + 2.0, took


def test_password_mismatch_is_ignored_split_brain(lab: Lab) -> None:
    n1 = pyvrrp(lab, "node1", priority=100, state="MASTER")
    wait_master(n1)
    n2 = pyvrrp(lab, "node2", priority=80, auth_pass="2222")
    # node2 must discard node1's adverts, so it times out and takes the VIP too.
    wait_master(n2)
    assert sorted(lab.holders(VIP)) == ["node1", "node2"]


def test_password_only_first_eight_characters_count(lab: Lab) -> None:
    n1 = pyvrrp(lab, "node1", priority=100, state="MASTER", auth_pass="abcdefgh-one")
    wait_master(n1)
    pyvrrp(lab, "node2", priority=80, auth_pass="abcdefgh-two")
    time.sleep(5)
    assert lab.holders(VIP) == ["node1"]


def test_client_arp_follows_the_new_master(lab: Lab) -> None:
    n1 = pyvrrp(lab, "node1", priority=100, state="MASTER")
    n2 = pyvrrp(lab, "node2", priority=80)
    wait_master(n1)
    lab.run("client", "ping", "-c", "1", "-W", "1", VIP)
    assert lab.neigh_mac("client", VIP) == lab.mac("node1")
    with lab.capture(filter="arp") as cap:
        lab.cut_link("node1")
        wait_master(n2)
        # The client sends nothing: only node2's gratuitous ARP can move its entry.
        assert wait_for(lambda: lab.neigh_mac("client", VIP) == lab.mac("node2"), 2.0)
        time.sleep(5.6)  # keepalived's default second burst comes 5 s later
    ours = [g for g in garps(cap.packets()) if g.ip == VIP]
    assert ours and {g.mac for g in ours} == {lab.mac("node2")}
    first = [g for g in ours if g.time - ours[0].time < 0.1]
    second = [g for g in ours if g.time - ours[0].time >= 0.1]
    assert len(first) == 5 and len(second) == 5, [round(g.time - ours[0].time, 3) for g in ours]
    assert abs((second[0].time - first[0].time) - 5.0) < 0.1
    lab.run("client", "ping", "-c", "1", "-W", "1", VIP)

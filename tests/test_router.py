"""The sans-IO VirtualRouter on a virtual clock, against the conformance cases of section 2.5
of docs/reference/vrrp-keepalived-semantics.md (cited as "case N"), RFC 3768 section 6 and
keepalived 2.2.7's documented deviations (section 1.5).

Timings are derived from the RFC formulas (v2, advert_int 1 s):
Skew_Time = (256 - p) / 256 and Master_Down_Interval = 3 + Skew_Time; binary fractions of
1/256 are exact in floating point, so exact equality is meaningful.
"""

from __future__ import annotations

import struct
from ipaddress import IPv4Address

import pytest
from scapy.utils import checksum as scapy_checksum
from vrrp_sim import VIP, Lan, config, of_type, packet_in, peer_advert, run_clock

from pyvrrp.config.model import GlobalDefs, Pos, VirtualIP, VrrpInstance
from pyvrrp.config.resolve import router_config
from pyvrrp.core import actions as a
from pyvrrp.core.events import PacketIn, SetFault, SetPriority, Start, Stop
from pyvrrp.core.packet import AUTH_NONE, AUTH_PASS, Advert, encode, pass_auth_data
from pyvrrp.core.router import RouterConfig, VirtualRouter
from pyvrrp.core.state import State


def mdi(priority: int, interval: float = 1.0) -> float:
    """RFC 3768 6.1: Master_Down_Interval = 3 * Advertisement_Interval + Skew_Time (v2)."""
    return 3 * interval + (256 - priority) / 256


def skew(priority: int) -> float:
    return (256 - priority) / 256


def started(cfg: RouterConfig, now: float = 0.0) -> VirtualRouter:
    r = VirtualRouter(cfg)
    r.handle(Start(), now)
    return r


def as_master(cfg: RouterConfig) -> tuple[VirtualRouter, float]:
    """Start silent at t=0 and run the clock until the router becomes MASTER."""
    r = started(cfg)
    t = r.next_deadline()
    assert t is not None
    run_clock(r, t)
    assert r.state is State.MASTER
    return r, t


def wire(acts: list[a.Action]) -> list[a.Action]:
    """The actions with an effect outside the router (drop Transition and Log)."""
    return [x for x in acts if not isinstance(x, a.Transition | a.Log)]


def raw_v2(*, vt: int = 0x21, vrid: int = 50, prio: int = 200, adv_int: int = 1,
           auth_type: int = AUTH_NONE) -> bytes:
    """A VRRPv2 message laid out by hand (RFC 3768 5.1), checksummed by scapy."""
    body = struct.pack("!BBBBBBH", vt, vrid, prio, 1, auth_type, adv_int, 0)
    body += VIP.packed + b"\0" * 8
    return body[:6] + struct.pack("!H", scapy_checksum(body)) + body[8:]


def v3_without_pseudo_header(prio: int = 200) -> bytes:
    """A VRRPv3 message checksummed as RFC 9568 reads it for IPv4 (no pseudo-header)."""
    body = struct.pack("!BBBBHH", 0x31, 50, prio, 1, 100, 0) + VIP.packed
    return body[:6] + struct.pack("!H", scapy_checksum(body)) + body[8:]


# -- case 1: what a master puts in its adverts ----------------------------------------------


def test_case1_master_advert_fields() -> None:
    """Case 1: ver 2, type 1, VRID, p, count N, auth 0, adv 1, N VIPs, zero auth, 16+4N.

    The IP header (dst 224.0.0.18/group, TTL 255, proto 112, src = primary) is written by
    pyvrrp/io, outside the sans-IO core, and is not covered here.
    """
    vips = (VIP, IPv4Address("10.0.0.101"), IPv4Address("10.0.0.102"))
    r, _ = as_master(config(vips=vips))
    acts = r.handle_timer(r.next_deadline() or 0.0)
    (send,) = [x for x in acts if isinstance(x, a.SendAdvert)]
    assert send.advert == Advert(2, 50, 100, vips, interval_cs=100, auth_type=AUTH_NONE,
                                 auth_data=b"\0" * 8)
    raw = encode(send.advert)
    assert len(raw) == 16 + 4 * len(vips)
    assert raw[0] == 0x21
    assert scapy_checksum(raw) == 0  # RFC 1071 over the message only, no pseudo-header


def test_case1_pass_authentication_in_adverts() -> None:
    r, _ = as_master(config(auth_type=AUTH_PASS, auth_pass="1111"))
    (send,) = [x for x in r.handle_timer(r.next_deadline() or 0.0)
               if isinstance(x, a.SendAdvert)]
    assert send.advert.auth_type == AUTH_PASS
    assert send.advert.auth_data == b"1111\0\0\0\0"  # only the first 8 characters, padded


# -- cases 4-13: invalid adverts change nothing and are counted by reason --------------------

INVALID = [
    pytest.param(packet_in(peer_advert(200), ttl=254), "ttl", id="case4-ttl-254"),
    pytest.param(packet_in(peer_advert(200), ttl=1), "ttl", id="case4-ttl-1"),
    pytest.param(packet_in(peer_advert(200, version=3, interval_cs=100, auth_data=b"")),
                 "version", id="case6-v3-on-v2"),
    pytest.param(packet_in(v3_without_pseudo_header()), "version", id="case6-v3-rfc9568-csum"),
    pytest.param(packet_in(raw_v2(vt=0x22)), "type", id="case7-type-2"),
    pytest.param(packet_in(raw_v2()[:-1]), "length", id="case8-truncated"),
    pytest.param(packet_in(raw_v2()[:8]), "length", id="case8-header-only"),
    pytest.param(packet_in(raw_v2()[:6] + b"\0\0" + raw_v2()[8:]), "checksum",
                 id="case9-bad-checksum"),
    pytest.param(packet_in(peer_advert(200, vrid=51)), "vrid", id="case10-other-vrid"),
    pytest.param(packet_in(peer_advert(200, auth_type=AUTH_PASS,
                                       auth_data=pass_auth_data("1111"))),
                 "auth_type", id="case11-pass-vs-none"),
    pytest.param(packet_in(peer_advert(200, interval_cs=200)), "interval",
                 id="case12-interval-2s"),
    pytest.param(packet_in(peer_advert(200, addresses=(IPv4Address("10.0.0.99"),))),
                 "addresses", id="case13-vip-mismatch"),
    pytest.param(packet_in(peer_advert(200, addresses=(VIP, IPv4Address("10.0.0.99")))),
                 "addresses", id="case13-count-mismatch"),
]


@pytest.mark.parametrize(("pkt", "reason"), INVALID)
def test_invalid_advert_to_backup_is_dropped(pkt: PacketIn, reason: str) -> None:
    """Each packet claims priority 200: were it accepted it would reset the down timer."""
    r = started(config())
    deadline = r.next_deadline()
    assert r.handle(pkt, 1.0) == []
    assert r.state is State.BACKUP
    assert r.next_deadline() == deadline
    assert r.stats == {f"rx_drop_{reason}": 1}
    run_clock(r, deadline or 0.0)
    assert r.state is State.MASTER


@pytest.mark.parametrize(("pkt", "reason"), INVALID)
def test_invalid_advert_to_master_is_dropped(pkt: PacketIn, reason: str) -> None:
    """Were it accepted, a priority-200 advert would send this master to BACKUP."""
    r, tm = as_master(config())
    deadline = r.next_deadline()
    assert r.handle(pkt, tm + 0.5) == []
    assert r.state is State.MASTER
    assert r.next_deadline() == deadline
    assert r.stats == {f"rx_drop_{reason}": 1}


def test_valid_advert_is_counted_and_resets_the_timer() -> None:
    """The control for the two tests above: the same advert, well formed, is accepted."""
    r = started(config())
    assert r.handle(packet_in(peer_advert(200)), 1.0) == []
    assert r.stats == {"rx_ok": 1}
    assert r.next_deadline() == 1.0 + mdi(100)


def test_case11_pass_authentication() -> None:
    """Case 11: a wrong password or a missing one is dropped; only 8 characters matter."""
    r = started(config(auth_type=AUTH_PASS, auth_pass="12345678abc"))
    d0 = r.next_deadline()
    for adv, reason in [
        (peer_advert(200, auth_type=AUTH_PASS, auth_data=pass_auth_data("12345679")),
         "auth_pass"),
        (peer_advert(200, auth_type=AUTH_PASS, auth_data=pass_auth_data("1234567")),
         "auth_pass"),
        (peer_advert(200), "auth_type"),
    ]:
        assert r.handle(packet_in(adv), 1.0) == []
        assert r.stats[f"rx_drop_{reason}"] >= 1
    assert r.next_deadline() == d0
    same_prefix = peer_advert(200, auth_type=AUTH_PASS, auth_data=pass_auth_data("12345678xyz"))
    r.handle(packet_in(same_prefix), 2.0)
    assert r.stats["rx_ok"] == 1
    assert r.next_deadline() == 2.0 + mdi(100)


def test_case8_ethernet_padding_is_accepted() -> None:
    """Case 8: a 20-byte advert padded as in a minimum 60-byte frame (46 - 20 IP = 26)."""
    r = started(config())
    padded = encode(peer_advert(200)) + b"\0" * 6
    r.handle(packet_in(padded), 1.0)
    assert r.stats == {"rx_ok": 1}
    assert r.next_deadline() == 1.0 + mdi(100)


def test_case13_owner_advert_with_other_vips_is_processed() -> None:
    """Case 13: the VIP list check does not apply to the address owner's adverts."""
    r = started(config())
    r.handle(packet_in(peer_advert(255, addresses=(IPv4Address("10.0.0.99"),))), 1.0)
    assert r.stats == {"rx_ok": 1}
    assert r.next_deadline() == 1.0 + mdi(100)


def test_own_looped_back_adverts_are_ignored() -> None:
    r, tm = as_master(config())
    own = packet_in(r.advert(), src="10.0.0.1")
    assert r.handle(own, tm + 0.1) == []
    assert r.state is State.MASTER
    assert r.stats == {"rx_drop_own": 1}


def test_case12_interval_mismatch_gives_two_masters() -> None:
    """Case 12: v2 adverts with another interval are dropped both ways: split brain."""
    lan = Lan.of(config("A", 200, "10.0.0.1", interval_cs=200),
                 config("B", 100, "10.0.0.2", interval_cs=100))
    lan.start()
    lan.run_until(30.0)
    assert lan.states() == {"A": State.MASTER, "B": State.MASTER}
    assert lan.transitions("B")[-1] == (mdi(100), "B", State.MASTER)
    assert lan.transitions("A")[-1] == (mdi(200, interval=2.0), "A", State.MASTER)
    assert lan["A"].stats["rx_drop_interval"] > 0
    assert lan["B"].stats["rx_drop_interval"] > 0
    assert lan["A"].stats["rx_ok"] == lan["B"].stats["rx_ok"] == 0


# -- startup ---------------------------------------------------------------------------------


def test_case15_owner_with_state_master_takes_over_at_once() -> None:
    """Case 15: p=255 and state MASTER: advert + VIPs + GARPs at t=0, no MDI wait."""
    r = VirtualRouter(config(priority=255, initial_state=State.MASTER))
    acts = r.handle(Start(), 0.0)
    assert r.state is State.MASTER
    first = acts[0]
    assert isinstance(first, a.Transition)
    assert (first.old, first.new, first.priority) == (State.INIT, State.MASTER, 255)
    assert wire(acts) == [a.SendAdvert(r.advert()), a.AddVips(), a.SendGarp(5)]
    assert r.advert().priority == 255
    assert r.next_deadline() == 1.0


def test_owner_with_state_backup_waits_between_3_and_4_intervals() -> None:
    """[man] state: with priority 255 but not state MASTER the instance waits 3-4 intervals."""
    r = started(config(priority=255))
    assert r.state is State.BACKUP
    assert r.next_deadline() == mdi(255)


def test_case16_silent_network_master_after_master_down_interval() -> None:
    """Case 16: p=100 on a silent network: BACKUP, then MASTER at 3 + 156/256 s."""
    r = VirtualRouter(config())
    acts = r.handle(Start(), 0.0)
    assert [type(x) for x in acts] == [a.Transition, a.RemoveVips]
    assert r.state is State.BACKUP
    events = run_clock(r, 10.0)
    (t_master, tr), = of_type(events, a.Transition)
    assert tr.new is State.MASTER
    assert t_master == 3 + 156 / 256 == 3.609375
    adverts = [t for t, _ in of_type(events, a.SendAdvert)]
    assert adverts == [3.609375 + k for k in range(7)]  # one per advert_int from then on


# -- backup behaviour ------------------------------------------------------------------------


def test_case17_priority_zero_advert_gives_master_after_skew() -> None:
    """Case 17: a backup hearing priority 0 takes over after Skew_Time = 156/256 s."""
    r = started(config())
    r.handle(packet_in(peer_advert(200)), 1.0)
    assert r.handle(packet_in(peer_advert(0)), 1.25) == []
    assert r.next_deadline() == 1.25 + 0.609375
    events = run_clock(r, 5.0)
    assert of_type(events, a.Transition)[0][0] == 1.25 + skew(100)
    assert r.state is State.MASTER


def test_case17_graceful_failover_between_two_routers() -> None:
    """Case 17/25 on a LAN: the master stops, the backup is MASTER Skew_Time later."""
    lan = Lan.of(config("A", 150, "10.0.0.1"), config("B", 100, "10.0.0.2"))
    lan.start()
    lan.run_until(10.2)
    assert lan.states() == {"A": State.MASTER, "B": State.BACKUP}
    lan.inject("A", Stop())
    lan.run_until(20.0)
    assert lan.transitions("B")[-1] == (10.2 + 0.609375, "B", State.MASTER)


def test_case18_higher_priority_backup_preempts_lower_master() -> None:
    """Case 18: B (p=150) discards A's p=100 adverts, takes over 3 + 106/256 s after its
    start, and A hears the higher priority and goes BACKUP."""
    lan = Lan.of(config("A", 100, "10.0.0.1"), config("B", 150, "10.0.0.2"))
    lan.start("A")
    lan.run_until(10.0)
    assert lan.states()["A"] is State.MASTER
    lan.start("B")
    lan.run_until(30.0)
    t_b = 10.0 + 3 + 106 / 256
    assert lan.transitions("B") == [(10.0, "B", State.BACKUP), (t_b, "B", State.MASTER)]
    assert lan.transitions("A")[-1] == (t_b, "A", State.BACKUP)
    # A (MASTER since 3.609375) advertised at 10.609375, 11.609375 and 12.609375.
    assert lan["B"].stats["rx_lower_priority_discarded"] == 3
    a_removed = [r for r in lan.log if r.node == "A" and isinstance(r.action, a.RemoveVips)]
    assert a_removed[-1].t == t_b
    assert lan.states() == {"A": State.BACKUP, "B": State.MASTER}


def test_case18_counts_from_the_last_accepted_advert() -> None:
    r = started(config(priority=150))
    r.handle(packet_in(peer_advert(150), src="10.0.0.9"), 1.0)  # equal: accepted
    for t in (1.5, 2.5, 3.5, 4.5):
        r.handle(packet_in(peer_advert(100), src="10.0.0.5"), t)  # lower: discarded
    events = run_clock(r, 10.0)
    assert of_type(events, a.Transition)[0][0] == 1.0 + mdi(150) == 4.4140625


def test_case19_nopreempt_backup_stays_backup() -> None:
    """Case 19: nopreempt, p=150, hearing p=100: every advert resets the timer."""
    r = started(config(priority=150, preempt=False))
    for k in range(60):
        t = 0.5 + k
        assert r.handle(packet_in(peer_advert(100)), t) == []
        assert r.next_deadline() == t + mdi(150)
        assert run_clock(r, t + 1.0) == []
    assert r.state is State.BACKUP
    assert r.stats["rx_ok"] == 60


@pytest.mark.parametrize("peer_priority", [100, 101, 254, 255])
def test_case20_backup_never_masters_while_adverts_continue(peer_priority: int) -> None:
    """Case 20: adverts with priority >= local keep resetting the down timer."""
    r = started(config(priority=100))
    for k in range(30):
        r.handle(packet_in(peer_advert(peer_priority)), 0.3 + k)
        assert run_clock(r, 1.3 + k) == []
    assert r.state is State.BACKUP
    events = run_clock(r, 100.0)
    assert of_type(events, a.Transition)[0][0] == 29.3 + mdi(100)


# -- master behaviour ------------------------------------------------------------------------


def test_case21_master_hears_higher_priority() -> None:
    """Case 21: BACKUP at once, VIPs removed, notify (Transition), down timer armed."""
    r, tm = as_master(config(priority=100))
    now = tm + 0.4
    acts = r.handle(packet_in(peer_advert(150)), now)
    assert r.state is State.BACKUP
    assert isinstance(acts[0], a.Transition)
    assert (acts[0].old, acts[0].new) == (State.MASTER, State.BACKUP)
    assert wire(acts) == [a.RemoveVips()]
    assert r.next_deadline() == now + mdi(100)
    assert run_clock(r, now + 3.0) == []  # no more adverts or GARPs as a backup


def test_higher_prio_send_advert_option() -> None:
    """[man] vrrp_higher_prio_send_advert: advertise once before going BACKUP."""
    r, tm = as_master(config(higher_prio_send_advert=True))
    acts = r.handle(packet_in(peer_advert(150)), tm + 0.4)
    assert wire(acts) == [a.SendAdvert(r.advert()), a.RemoveVips()]
    assert r.state is State.BACKUP


@pytest.mark.parametrize(("src", "expected"), [
    ("10.0.0.2", State.BACKUP),
    ("10.0.0.0", State.MASTER),
    ("10.0.1.0", State.BACKUP),
    ("9.255.255.255", State.MASTER),
])
def test_case22_equal_priority_tie_break_on_primary_address(src: str, expected: State) -> None:
    """Case 22: master p=100 src 10.0.0.1; equal priority from a higher address wins
    (compared as unsigned integers in network byte order)."""
    r, tm = as_master(config(priority=100, primary="10.0.0.1"))
    r.handle(packet_in(peer_advert(100), src=src), tm + 0.5)
    assert r.state is expected


def test_case22_split_brain_heals_to_the_higher_address() -> None:
    lan = Lan.of(config("A", 100, "10.0.0.1"), config("B", 100, "10.0.0.2"))
    lan.partition("A", "B")
    lan.start()
    lan.run_until(10.0)
    assert lan.states() == {"A": State.MASTER, "B": State.MASTER}
    lan.heal("A", "B")
    lan.run_until(20.0)
    assert lan.states() == {"A": State.BACKUP, "B": State.MASTER}
    assert lan.transitions("A")[-1][2] is State.BACKUP


def test_case22_simultaneous_start_elects_the_higher_address() -> None:
    """Equal priorities time out together; the tie-break settles it the same instant."""
    lan = Lan.of(config("A", 100, "10.0.0.1"), config("B", 100, "10.0.0.2"))
    lan.start()
    lan.run_until(20.0)
    assert lan.states() == {"A": State.BACKUP, "B": State.MASTER}
    assert lan.transitions("A") == [(0.0, "A", State.BACKUP), (mdi(100), "A", State.MASTER),
                                    (mdi(100), "A", State.BACKUP)]


def test_case23_lower_priority_keepalived_default() -> None:
    """Case 23, keepalived default: advertise at once, fire master_rx_lower_pri, stay."""
    r, tm = as_master(config(priority=100))
    acts = r.handle(packet_in(peer_advert(50), src="10.0.0.7"), tm + 0.5)
    assert acts == [a.SendAdvert(r.advert()),
                    a.MasterRxLowerPri(IPv4Address("10.0.0.7"), 50)]
    assert r.state is State.MASTER


def test_case23_lower_priority_with_garp_lower_prio_repeat() -> None:
    r, tm = as_master(config(priority=100, garp_lower_prio_repeat=3))
    acts = r.handle(packet_in(peer_advert(50)), tm + 0.5)
    assert wire(acts)[:2] == [a.SendAdvert(r.advert()), a.SendGarp(3)]
    assert r.state is State.MASTER


def test_case23_lower_priority_rfc_mode_is_silent() -> None:
    """Case 23, lower_prio_no_advert: nothing on the wire (RFC 3768 discards). keepalived
    2.2.7 still runs notify_master_rx_lower_pri (vrrp_state_master_rx), so the hook stays."""
    r, tm = as_master(config(priority=100, lower_prio_no_advert=True))
    deadline = r.next_deadline()
    acts = r.handle(packet_in(peer_advert(50)), tm + 0.5)
    assert not [x for x in acts if isinstance(x, a.SendAdvert | a.SendGarp)]
    assert r.state is State.MASTER
    assert r.next_deadline() == deadline


def test_case24_master_hears_priority_zero() -> None:
    """Case 24: send an advert now and reset Adver_Timer; stay MASTER."""
    r, tm = as_master(config())
    now = tm + 0.3
    acts = r.handle(packet_in(peer_advert(0)), now)
    assert acts == [a.SendAdvert(r.advert())]
    assert r.state is State.MASTER
    assert r.next_deadline() == now + 1.0
    assert run_clock(r, now + 0.99) == []


# -- becoming master: advert, VIPs, GARPs ------------------------------------------------------


def test_case26_transition_order_and_second_garp_burst() -> None:
    """Case 26: advert first, then VIP add, then 5 GARPs; 5 more after 5 s."""
    r = started(config())
    events = run_clock(r, 20.0)
    tm = mdi(100)
    at_tm = [x for t, x in events if t == tm]
    assert wire(at_tm) == [a.SendAdvert(r.advert()), a.AddVips(), a.SendGarp(5)]
    assert of_type(events, a.SendGarp) == [(tm, a.SendGarp(5)), (tm + 5.0, a.SendGarp(5))]


def test_case26_vrrp_min_garp() -> None:
    """Case 26 with vrrp_min_garp: one GARP and no second burst."""
    inst = VrrpInstance(name="VI_1", interface="eth0", virtual_router_id=50,
                        pos=Pos("t.yaml", 1, 1), virtual_ipaddress=(VirtualIP(VIP, 24),))
    cfg = router_config(inst, GlobalDefs(vrrp_min_garp=True), IPv4Address("10.0.0.1"))
    r = started(cfg)
    events = run_clock(r, 60.0)
    assert of_type(events, a.SendGarp) == [(mdi(100), a.SendGarp(1))]


def test_garp_second_burst_follows_garp_master_delay() -> None:
    r = started(config(garp_master_delay=2.5, garp_master_repeat=3))
    events = run_clock(r, 60.0)
    tm = mdi(100)
    assert of_type(events, a.SendGarp) == [(tm, a.SendGarp(3)), (tm + 2.5, a.SendGarp(3))]


def test_garp_master_delay_zero_means_no_second_burst() -> None:
    r = started(config(garp_master_delay=0.0))
    events = run_clock(r, 60.0)
    assert of_type(events, a.SendGarp) == [(mdi(100), a.SendGarp(5))]


def test_case27_garp_master_refresh() -> None:
    """Case 27: garp_master_refresh 60: a refresh round every 60 s while MASTER."""
    r = started(config(garp_master_refresh=60.0, garp_master_refresh_repeat=2))
    events = run_clock(r, 200.0)
    tm = mdi(100)
    assert of_type(events, a.SendGarp) == [
        (tm, a.SendGarp(5)), (tm + 5.0, a.SendGarp(5)),
        (tm + 60.0, a.SendGarp(2)), (tm + 120.0, a.SendGarp(2)), (tm + 180.0, a.SendGarp(2)),
    ]


def test_leaving_master_cancels_pending_garps() -> None:
    r, tm = as_master(config(garp_master_refresh=60.0))
    r.handle(packet_in(peer_advert(200)), tm + 1.0)
    for k in range(60):  # keep it BACKUP well past the second burst and the refresh
        r.handle(packet_in(peer_advert(200)), tm + 2.0 + k)
        assert run_clock(r, tm + 2.5 + k) == []


# -- preempt_delay ---------------------------------------------------------------------------


def test_case28_preempt_delay_on_a_silent_network_is_not_added() -> None:
    """Case 28. The [man] example says p=128 with preempt_delay 2 takes about 5.5 s, but
    keepalived 2.2.7 itself, run in the lab, becomes MASTER after the plain 3.5 s
    Master_Down_Interval on a silent network (docs/vrrp-semantics.md): the binary is the
    drop-in's spec, so the delay only applies once a lower-priority master is seen."""
    r = started(config(priority=128, preempt_delay=2.0))
    events = run_clock(r, 20.0)
    (t, tr), = of_type(events, a.Transition)
    assert tr.new is State.MASTER
    assert t == mdi(128) == 3.5


def test_case28_preempt_delay_with_a_lower_priority_master_is_about_5_5_s() -> None:
    """Case 28 with a lower-priority master on the wire (keepalived measured 5.47 s)."""
    r = started(config(priority=128, preempt_delay=2.0))
    events: list[tuple[float, a.Action]] = []
    t = 0.0
    while r.state is not State.MASTER and t < 20:
        r.handle(packet_in(peer_advert(80), src="10.0.0.5"), t)
        events += run_clock(r, t + 0.999)
        t += 1.0
    # The delay runs from the first lower advert (t=0) to t=2: the adverts at 0 and 1
    # reset the down timer, those from 2 on are discarded, so it expires at 1 + MDI.
    assert of_type(events, a.Transition)[0][0] == 1.0 + mdi(128)
    assert r.stats["rx_lower_priority_discarded"] == 3  # t = 2, 3, 4


def test_preempt_delay_starts_when_a_lower_priority_master_is_seen() -> None:
    """[man] preempt_delay counts from 'seeing a lower priority master'. An equal-priority
    advert heard earlier must not start it (keepalived vrrp_state_backup clears the delay
    on any advert with priority >= its own)."""
    r = started(config(priority=150, preempt_delay=2.0))
    r.handle(packet_in(peer_advert(150), src="10.0.0.9"), 1.0)
    events: list[tuple[float, a.Action]] = []
    for t in range(2, 20):  # a lower-priority master advertises from t=2 on
        if r.state is State.MASTER:
            break
        r.handle(packet_in(peer_advert(100), src="10.0.0.5"), float(t))
        events += run_clock(r, t + 0.999)
    # The delay runs from t=2 to t=4: the adverts at 2 and 3 still reset the down timer,
    # those from 4 on are discarded, so the timer set at t=3 expires.
    assert of_type(events, a.Transition)[0][0] == 3.0 + mdi(150)
    assert r.stats["rx_lower_priority_discarded"] == 3  # t = 4, 5, 6


# -- stop, owner collision, tracking ---------------------------------------------------------


def test_case25_stop_from_master_sends_one_priority_zero_advert_then_removes_vips() -> None:
    r, tm = as_master(config())
    acts = r.handle(Stop(), tm + 0.5)
    assert wire(acts) == [a.SendAdvert(r.advert(0)), a.RemoveVips()]
    assert [x.advert.priority for x in acts if isinstance(x, a.SendAdvert)] == [0]
    assert r.state is State.STOP
    assert r.next_deadline() is None
    assert r.handle(Stop(), tm + 1.0) == []
    assert r.handle(packet_in(peer_advert(200)), tm + 1.0) == []
    assert r.state is State.STOP


def test_stop_from_backup_sends_nothing() -> None:
    r = started(config())
    acts = r.handle(Stop(), 1.0)
    assert wire(acts) == []
    assert r.state is State.STOP
    assert r.next_deadline() is None


def test_case35_owner_collision_hearer_drops_to_254() -> None:
    """Case 35 / 1.5 #6: two owners; the one that hears the other lowers itself to 254."""
    lan = Lan.of(config("A", 255, "10.0.0.1", initial_state=State.MASTER),
                 config("B", 255, "10.0.0.2", initial_state=State.MASTER))
    lan.start("A")
    lan.run_until(5.5)
    lan.start("B")
    assert lan.states() == {"A": State.BACKUP, "B": State.MASTER}
    assert lan["A"].priority == 254 and lan["B"].priority == 255
    assert any(r.node == "A" and isinstance(r.action, a.Log) and r.action.level == "error"
               for r in lan.log)
    lan.run_until(30.0)
    assert lan.states() == {"A": State.BACKUP, "B": State.MASTER}
    lan.inject("A", SetPriority(255))  # an owner's priority is never changed by tracking
    assert lan["A"].priority == 254


@pytest.mark.parametrize(("requested", "effective"), [
    (300, 254), (255, 254), (254, 254), (180, 180), (1, 1), (0, 1), (-7, 1),
])
def test_set_priority_is_clamped_to_1_254(requested: int, effective: int) -> None:
    r = started(config(priority=100))
    r.handle(SetPriority(requested, "track"), 1.0)
    assert r.priority == effective


def test_set_priority_that_changes_nothing_does_nothing() -> None:
    r, tm = as_master(config(priority=254))
    assert r.handle(SetPriority(300), tm + 0.5) == []
    assert r.handle(SetPriority(254), tm + 0.5) == []


def test_set_priority_never_changes_an_owner() -> None:
    r = VirtualRouter(config(priority=255, initial_state=State.MASTER))
    r.handle(Start(), 0.0)
    for p in (100, 1, 254, 300):
        assert r.handle(SetPriority(p), 1.0) == []
        assert r.priority == 255
    assert r.advert().priority == 255


def test_set_priority_on_master_is_advertised() -> None:
    r, tm = as_master(config(priority=100))
    r.handle(SetPriority(120), tm + 0.5)
    events = run_clock(r, tm + 3.0)
    assert {x.advert.priority for _, x in of_type(events, a.SendAdvert)} == {120}


def test_set_fault_from_master_and_back() -> None:
    """1.5 #5 / case 30: FAULT from MASTER sends priority 0 and removes VIPs; clearing
    the fault gives BACKUP, and MASTER only after the down timer."""
    r, tm = as_master(config())
    acts = r.handle(SetFault("eth1", True), tm + 0.5)
    assert wire(acts) == [a.SendAdvert(r.advert(0)), a.RemoveVips()]
    assert [x.new for x in acts if isinstance(x, a.Transition)] == [State.FAULT]
    assert r.state is State.FAULT
    assert r.next_deadline() is None
    assert r.handle(packet_in(peer_advert(0)), tm + 1.0) == []
    assert r.handle(SetFault("script", True), tm + 2.0) == []
    assert r.handle(SetFault("eth1", False), tm + 3.0) == []  # "script" still faulty
    assert r.state is State.FAULT
    t_clear = tm + 4.0
    acts = r.handle(SetFault("script", False), t_clear)
    assert [x.new for x in acts if isinstance(x, a.Transition)] == [State.BACKUP]
    assert wire(acts) == []
    assert r.next_deadline() == t_clear + mdi(100)
    events = run_clock(r, t_clear + 10.0)
    assert of_type(events, a.Transition)[0][0] == t_clear + mdi(100)


def test_fault_on_master_lets_the_backup_take_over_after_skew() -> None:
    lan = Lan.of(config("A", 150, "10.0.0.1"), config("B", 100, "10.0.0.2"))
    lan.start()
    lan.run_until(8.25)
    lan.inject("A", SetFault("eth0", True))
    lan.run_until(15.0)
    assert lan.states() == {"A": State.FAULT, "B": State.MASTER}
    assert lan.transitions("B")[-1][0] == 8.25 + skew(100)


def test_fault_at_startup() -> None:
    r = VirtualRouter(config())
    assert r.handle(SetFault("eth0", True), 0.0) == []
    acts = r.handle(Start(), 0.0)
    assert r.state is State.FAULT
    assert wire(acts) == []
    assert r.next_deadline() is None


def test_dead_master_backup_takes_over_after_master_down_interval() -> None:
    """5.1: hard failure: the backup is MASTER one MDI after the last advert it heard."""
    lan = Lan.of(config("A", 150, "10.0.0.1"), config("B", 100, "10.0.0.2"))
    lan.start()
    lan.run_until(10.0)
    last = max(t for t, _ in lan.adverts("A"))
    lan.kill("A")
    lan.run_until(20.0)
    assert lan.transitions("B")[-1] == (last + mdi(100), "B", State.MASTER)

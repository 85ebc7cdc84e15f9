"""A reload that replaces a MASTER's instance resumes it as MASTER (keepalived's
reload_master), so the VIP does not flap to the backup and back."""

from __future__ import annotations

from ipaddress import IPv4Address

from pyvrrp.core import actions as a
from pyvrrp.core.events import SetFault, Start
from pyvrrp.core.router import RouterConfig, VirtualRouter
from pyvrrp.core.state import State

CFG = RouterConfig(name="VI_1", vrid=50, priority=100, primary_ip=IPv4Address("10.0.0.200"),
                   vips=(IPv4Address("10.0.0.100"),))


def test_resume_master_goes_straight_to_master_with_advert_vips_and_garp() -> None:
    r = VirtualRouter(CFG)
    acts = r.handle(Start(resume_master=True), 10.0)
    assert r.state is State.MASTER
    kinds = [type(x) for x in acts]
    assert kinds == [a.Transition, a.SendAdvert, a.AddVips, a.SendGarp]
    assert r.next_deadline() == 11.0  # the next advert, one interval on


def test_a_plain_start_waits_for_the_master_down_interval() -> None:
    r = VirtualRouter(CFG)
    r.handle(Start(), 10.0)
    assert r.state is State.BACKUP
    assert r.next_deadline() == 10.0 + 3 + (256 - 100) / 256


def test_resume_does_not_override_a_fault() -> None:
    r = VirtualRouter(CFG)
    r.handle(SetFault("interface eth0 down", True), 10.0)
    r.handle(Start(resume_master=True), 10.0)
    assert r.state is State.FAULT

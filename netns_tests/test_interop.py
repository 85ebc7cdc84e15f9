"""pyvrrp against Debian's real keepalived 2.2.7, both ways round, the seed's config.

Each pair must agree on the election, on failover when the master stops, and on the
master's preemption when it comes back; adverts of both are decoded by scapy.
"""

from __future__ import annotations

import shutil
import time

import pytest
from decode import vrrp_adverts

from pyvrrp.lab.speakers import VIP, Instance, Speaker
from pyvrrp.lab.topology import Lab, wait_for

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(shutil.which("keepalived") is None, reason="keepalived not installed"),
]

ELECTION = 8.0


def speaker(lab: Lab, host: str, kind: str, **kw: object) -> Speaker:
    return Speaker(lab, host, kind, Instance(router_id=host, **kw)).start()  # type: ignore[arg-type]


@pytest.mark.parametrize(("master_kind", "backup_kind"),
                         [("pyvrrp", "keepalived"), ("keepalived", "pyvrrp")])
def test_election_failover_preemption(lab: Lab, master_kind: str, backup_kind: str) -> None:
    master = speaker(lab, "node1", master_kind, priority=100, state="MASTER")
    assert wait_for(lambda: lab.holders(VIP) == ["node1"], ELECTION), master.log_text()
    with lab.capture() as cap:
        backup = speaker(lab, "node2", backup_kind, priority=80)
        # The backup hears the master's adverts and accepts them: it stays silent.
        time.sleep(5)
        assert lab.holders(VIP) == ["node1"], backup.log_text()
    ads = vrrp_adverts(cap.packets())
    assert {a.src for a in ads} == {"10.0.0.200"}
    assert all(a.checksum_ok and a.ttl == 255 and a.priority == 100 for a in ads)

    # Failover: the master stops; the backup takes over after its Skew_Time.
    t0 = time.monotonic()
    master.stop()
    assert wait_for(lambda: lab.holders(VIP) == ["node2"], 3.0), backup.log_text()
    assert time.monotonic() - t0 < 2.0

    # Preemption: the higher priority comes back and wins the VIP back.
    master = speaker(lab, "node1", master_kind, priority=100, state="MASTER")
    assert wait_for(lambda: lab.holders(VIP) == ["node1"], ELECTION), master.log_text()
    time.sleep(2.5)
    assert lab.holders(VIP) == ["node1"], backup.log_text()
    backup.stop()
    master.stop()


@pytest.mark.parametrize("pyvrrp_host", ["node1", "node2"])
def test_equal_priority_split_brain_heals_to_higher_address(lab: Lab, pyvrrp_host: str) -> None:
    other = "node2" if pyvrrp_host == "node1" else "node1"
    # Keep the two apart at the IP layer (links stay up, so neither goes to FAULT).
    for chain in ("INPUT", "OUTPUT"):
        lab.run("node1", "iptables", "-I", chain, "-p", "112", "-j", "DROP")
    speaker(lab, pyvrrp_host, "pyvrrp", priority=90)
    speaker(lab, other, "keepalived", priority=90)
    # Apart, both become master; the tie-break is only ever made between two masters.
    assert wait_for(lambda: sorted(lab.holders(VIP)) == ["node1", "node2"], ELECTION)
    for chain in ("INPUT", "OUTPUT"):
        lab.run("node1", "iptables", "-D", chain, "-p", "112", "-j", "DROP")
    # Equal priority: the sender with the higher primary address (10.0.0.201) stays.
    assert wait_for(lambda: lab.holders(VIP) == ["node2"], 4.0), lab.holders(VIP)
    time.sleep(3.5)
    assert lab.holders(VIP) == ["node2"]


def test_keepalived_ignores_pyvrrp_with_another_password(lab: Lab) -> None:
    speaker(lab, "node1", "pyvrrp", priority=100, state="MASTER", auth_pass="9999")
    ka = speaker(lab, "node2", "keepalived", priority=80)
    assert wait_for(lambda: sorted(lab.holders(VIP)) == ["node1", "node2"], ELECTION), \
        ka.log_text()

"""SIGHUP reload of a running pyvrrp: keepalived's users' three expectations.

An unchanged config moves nothing; a bad config is refused and the running one kept; a
changed config touches only what changed (a master whose instance changed stays master).
"""

from __future__ import annotations

import signal
import time

import yaml
from decode import garps, vrrp_adverts

from pyvrrp.lab.speakers import VIP, Instance, Speaker
from pyvrrp.lab.topology import Lab, wait_for

VIP2 = "10.0.0.101"


def hup(sp: Speaker, doc: dict[str, object] | str, mark: str) -> None:
    path = sp.dir / "node.yaml"
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc, sort_keys=False))
    assert sp.proc is not None
    sp.proc.send_signal(signal.SIGHUP)
    assert sp.wait_log(mark, 5), sp.log_text()


def test_reload_unchanged_bad_and_changed(lab: Lab) -> None:
    inst = Instance(priority=100, state="MASTER", router_id="node1")
    n1 = Speaker(lab, "node1", "pyvrrp", inst).start()
    n2 = Speaker(lab, "node2", "pyvrrp", Instance(priority=80, router_id="node2")).start()
    assert wait_for(lambda: lab.holders(VIP) == ["node1"], 8), n1.log_text()
    time.sleep(1)
    doc = inst.yaml_dict()

    with lab.capture() as cap:
        hup(n1, doc, "Configuration unchanged")
        time.sleep(1.5)
    ads = vrrp_adverts(cap.packets())
    assert ads and all(a.src == "10.0.0.200" and a.priority == 100 for a in ads)
    assert not garps(cap.packets()), "an unchanged reload sends no GARP"
    assert lab.holders(VIP) == ["node1"]

    hup(n1, "vrrp_instance:\n  VI_1: {priority: 300\n", "Reload refused")
    assert n1.proc is not None and n1.proc.poll() is None
    assert "YAML syntax" in n1.log_text()
    time.sleep(1.5)
    assert lab.holders(VIP) == ["node1"]

    # VI_1 changes (priority 110) and VI_2 appears: VI_1 stays master throughout.
    vi2 = dict(doc["vrrp_instance"]["VI_1"], virtual_router_id=51,  # type: ignore[index]
               virtual_ipaddress=[f"{VIP2}/24 dev eth0"])
    changed = dict(doc)
    changed["vrrp_instance"] = {
        "VI_1": dict(doc["vrrp_instance"]["VI_1"], priority=110),  # type: ignore[index]
        "VI_2": vi2}
    with lab.capture() as cap:
        hup(n1, changed, "Reload: keeping none; changed")
        assert wait_for(lambda: lab.holders(VIP2) == ["node1"], 8), n1.log_text()
        time.sleep(0.5)
    ads = vrrp_adverts(cap.packets())
    assert not [a for a in ads if a.src == "10.0.0.201"], "node2 never had to take over"
    assert not [a for a in ads if a.priority == 0], "no priority-0 advert on a handover"
    assert {a.priority for a in ads if a.vrid == 50} >= {110}
    assert lab.holders(VIP) == ["node1"]

    # VI_2 removed again: it leaves with a priority-0 advert and takes its VIP along.
    with lab.capture() as cap:
        hup(n1, changed | {"vrrp_instance": {"VI_1": changed["vrrp_instance"]["VI_1"]}},
            "removing")
        assert wait_for(lambda: lab.holders(VIP2) == [], 3), n1.log_text()
        time.sleep(0.3)
    zero = [a for a in vrrp_adverts(cap.packets()) if a.priority == 0]
    assert [a.vrid for a in zero] == [51]
    assert lab.holders(VIP) == ["node1"]
    n2.stop()
    assert n1.stop() == 0

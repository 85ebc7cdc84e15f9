"""`pyvrrp lab`: the seed's VIP failover, shown step by step in network namespaces.

Builds client, node1 and node2 on a bridge (nothing in the root namespace), runs
`pyvrrp run` on both directors with the seed's instance, and shows who holds the VIP and
which MAC the client uses for it: at start, after the master's link is cut, after it
comes back (preemption), after a graceful stop and after a restart. Exits 0 when every
step behaved as keepalived would, 1 otherwise; the namespaces are always removed.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from pyvrrp.core.timers import master_down_interval, skew_time
from pyvrrp.lab.speakers import VIP, Instance, Speaker
from pyvrrp.lab.topology import Lab, wait_for

SETUPS = ("vrrp",)


class Demo:
    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.ok = True
        self.t0 = time.monotonic()

    def say(self, text: str) -> None:
        print(f"[{time.monotonic() - self.t0:6.2f}s] {text}", flush=True)

    def show(self) -> None:
        holders = self.lab.holders(VIP) or ["nobody"]
        self.lab.run("client", "ping", "-c", "1", "-W", "1", VIP, check=False)
        mac = self.lab.neigh_mac("client", VIP) or "none"
        who = {self.lab.mac(h): h for h in ("node1", "node2")}.get(mac, "?")
        self.say(f"    VIP {VIP} is on {', '.join(holders)}; the client sends to {mac} ({who})")

    def expect(self, what: str, cond: Callable[[], bool], timeout: float) -> float:
        start = time.monotonic()
        if wait_for(cond, timeout):
            took = time.monotonic() - start
            self.say(f"OK  {what} ({took:.2f}s)")
            return took
        self.ok = False
        self.say(f"FAIL {what}: not within {timeout:.0f}s")
        return timeout


def run_vrrp(lab: Lab) -> bool:
    d = Demo(lab)
    only = lambda host: (lambda: lab.holders(VIP) == [host])  # noqa: E731
    seed = dict(vrid=50, advert_int=1, auth_pass="1111")
    node1 = Speaker(lab, "node1", "pyvrrp", Instance(priority=100, state="MASTER",
                                                     router_id="node1.qinglin.com", **seed))
    node2 = Speaker(lab, "node2", "pyvrrp", Instance(priority=80, state="BACKUP",
                                                     router_id="node2.qinglin.com", **seed))
    d.say("hosts: " + ", ".join(f"{h} {a}" for h, a in lab.hosts.items())
          + f"; VRID 50, group 233.6.6.6, VIP {VIP}/24 dev eth0 label eth0:1")
    d.say("starting pyvrrp: node1 priority 100 (MASTER), node2 priority 80 (BACKUP)")
    node1.start()
    node2.start()
    d.expect("node1 elected master after Master_Down_Interval "
             f"{master_down_interval(100, 1, 2):.3f}s", only("node1"), 10)
    d.show()

    d.say("hard failure: cutting node1's link")
    lab.cut_link("node1")
    d.expect(f"node2 took over (bound: last advert + {master_down_interval(80, 1, 2):.3f}s)",
             only("node2"), 8)
    d.show()

    d.say("restoring node1's link")
    lab.restore_link("node1")
    d.expect("node1 preempted the VIP back (higher priority)", only("node1"), 10)
    d.show()

    d.say("graceful stop of pyvrrp on node1 (SIGTERM: one priority-0 advert)")
    node1.stop()
    d.expect(f"node2 took over after Skew_Time {skew_time(80, 1, 2):.3f}s", only("node2"), 4)
    d.show()

    d.say("restarting pyvrrp on node1")
    node1.start()
    d.expect("node1 preempted the VIP back", only("node1"), 10)
    d.show()
    node1.stop()
    node2.stop()
    d.say("both stopped; VIP on " + (", ".join(lab.holders(VIP)) or "nobody"))
    d.say("all steps as expected" if d.ok else "SOME STEPS FAILED")
    return d.ok


def main(args: argparse.Namespace) -> int:
    setups = [args.setup] if getattr(args, "setup", None) else list(SETUPS)
    ok = True
    for setup in setups:
        print(f"== setup: {setup} ==", flush=True)
        with Lab() as lab:
            ok = run_vrrp(lab) and ok
    return 0 if ok else 1

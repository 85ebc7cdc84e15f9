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
from pyvrrp.lab.nginx import ClientLoop, Nginx
from pyvrrp.lab.speakers import VIP, Instance, Speaker
from pyvrrp.lab.topology import Lab, wait_for

SETUPS = ("vrrp", "nginx")
RS = {"rs1": "10.0.0.10", "rs2": "10.0.0.20"}


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


def run_nginx(lab: Lab) -> bool:
    """Setup 3: nginx reverse proxies on the directors, check_nginx tracked."""
    d = Demo(lab)
    only = lambda host: (lambda: lab.holders(VIP) == [host])  # noqa: E731
    for host, addr in RS.items():
        Nginx(lab, host, page=addr).start()
    proxies = {h: Nginx(lab, h, upstreams=[f"{a}:80" for a in RS.values()]).start()
               for h in ("node1", "node2")}
    d.say("rs1 and rs2 run nginx (page = their address); node1 and node2 run nginx as a "
          "reverse proxy to both (weight 1 each)")
    for host, prio in (("node1", 100), ("node2", 80)):
        script = proxies[host].check_script()
        Speaker(lab, host, "pyvrrp", Instance(
            priority=prio, state="BACKUP", router_id=host, track_script=["check_nginx"],
            scripts={"check_nginx": {"script": str(script), "interval": 1, "weight": -30,
                                     "fall": 3, "rise": 5, "timeout": 2}})).start()
    d.say("pyvrrp on node1 (100) and node2 (80), both state BACKUP, tracking check_nginx "
          "(interval 1, weight -30, fall 3, rise 5)")
    d.expect("node1 elected master", only("node1"), 10)
    served = ClientLoop(lab, "client", f"http://{VIP}/", 6, interval=0.05).wait()
    d.say(f"    client through the VIP: {' '.join(served)}")
    d.ok &= served == [RS["rs1"], RS["rs2"]] * 3 or served == [RS["rs2"], RS["rs1"]] * 3

    d.say("killing nginx on node1: after 3 failed checks its priority is 100 - 30 = 70 < 80")
    loop = ClientLoop(lab, "client", f"http://{VIP}/", 120, interval=0.1)
    proxies["node1"].kill()
    d.expect("node2 took the VIP", only("node2"), 12)
    results = loop.wait()
    d.say(f"    client loop: {results.count('FAIL')} failed requests of {len(results)}, "
          f"last ones: {' '.join(results[-4:])}")

    d.say("self-healing: check_nginx now restarts nginx when it is gone")
    proxies["node1"].check_script().write_text(
        proxies["node1"].check_script(heal=True).read_text())
    d.expect("after 5 successful checks node1 is back at 100 and preempted the VIP",
             only("node1"), 14)
    served = ClientLoop(lab, "client", f"http://{VIP}/", 4, interval=0.05).wait()
    d.say(f"    client through the VIP: {' '.join(served)}")
    d.say("all steps as expected" if d.ok else "SOME STEPS FAILED")
    return d.ok


def main(args: argparse.Namespace) -> int:
    setups = [args.setup] if getattr(args, "setup", None) else list(SETUPS)
    ok = True
    for setup in setups:
        print(f"== setup: {setup} ==", flush=True)
        if setup == "nginx":
            with Lab(dict(RS)) as lab:
                ok = run_nginx(lab) and ok
        else:
            with Lab() as lab:
                ok = run_vrrp(lab) and ok
    return 0 if ok else 1

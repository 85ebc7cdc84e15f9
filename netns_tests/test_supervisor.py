"""`pyvrrp run` on a config with virtual servers: a parent over a VRRP child and a
checker child (`ipvsctl run`). This host has no IPVS, so the checker child cannot stay
up here: the VRRP side must not care, and the parent must keep restarting it gently."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from pyvrrp.lab.topology import Lab, wait_for

CONFIG = """
global_defs: {vrrp_mcast_group4: 233.6.6.6}
vrrp_instance:
  VI_1:
    state: MASTER
    interface: eth0
    virtual_router_id: 50
    priority: 100
    virtual_ipaddress: [10.0.0.100/24 dev eth0]
virtual_server:
  10.0.0.100 80:
    lvs_sched: rr
    lvs_method: DR
    protocol: TCP
    real_server:
      10.0.0.10 80: {weight: 1}
"""


def children(parent: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(parent)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def test_vrrp_child_runs_under_the_parent_and_all_stop_together(lab: Lab) -> None:
    cfg = lab.workdir / "node.yaml"
    cfg.write_text(CONFIG)
    log = lab.workdir / "run.log"
    proc = lab.popen("node1", [sys.executable, "-m", "pyvrrp", "run", str(cfg)], log)
    assert wait_for(lambda: lab.holders("10.0.0.100") == ["node1"], 10), log.read_text()
    text = log.read_text()
    assert "started the vrrp child" in text and "started the checker child" in text
    # `ip netns exec` is the popen'd pid; the supervisor is its child (or itself).
    sup = [p for p in [proc.pid, *children(proc.pid)]
           if "pyvrrp run" in open(f"/proc/{p}/cmdline").read().replace("\0", " ")
           and "--vrrp-only" not in open(f"/proc/{p}/cmdline").read().replace("\0", " ")][0]
    kids = children(sup)
    assert kids, "the parent has children"
    time.sleep(4)
    restarts = log.read_text().count("the checker child exited")
    assert 1 <= restarts <= 4, "restarted, but with a growing gap"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0
    assert lab.holders("10.0.0.100") == []
    time.sleep(0.2)
    assert not [k for k in kids if subprocess.run(["kill", "-0", str(k)]).returncode == 0]


def test_the_seeds_keepalived_conf_runs_as_it_is_with_root(lab: Lab) -> None:
    """`pyvrrp run --root` on the seed's setup-1 files (absolute includes of
    /etc/keepalived/conf.d/*.conf): the VRRP child reads them with the same root, at start
    and on SIGHUP, and node1 holds the VIP throughout."""
    root = Path(__file__).resolve().parents[1] / "config/keepalived/lvs-dr-ipport/node1"
    log = lab.workdir / "seed.log"
    proc = lab.popen("node1", [sys.executable, "-m", "pyvrrp", "run", "--root", str(root),
                               str(root / "etc/keepalived/keepalived.conf")], log)
    assert wait_for(lambda: lab.holders("10.0.0.100") == ["node1"], 15), log.read_text()
    text = log.read_text()
    assert "started the vrrp child" in text and "(VI_1) VRID 50 on eth0" in text
    proc.send_signal(signal.SIGHUP)  # read again, with the root: the same config
    assert wait_for(lambda: "Configuration unchanged: nothing to do" in log.read_text(), 10), \
        log.read_text()
    assert "Reload refused" not in log.read_text()
    assert proc.poll() is None and lab.holders("10.0.0.100") == ["node1"], log.read_text()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0
    assert lab.holders("10.0.0.100") == []

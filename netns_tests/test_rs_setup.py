"""`ipvsctl rs-setup`: the seed's dr_vip_conf.sh, in a real server's own namespace."""

from __future__ import annotations

import sys
from pathlib import Path

from pyvrrp.lab.topology import Lab

SYSCTLS = ("net.ipv4.conf.all.arp_ignore", "net.ipv4.conf.all.arp_announce",
           "net.ipv4.conf.lo.arp_ignore", "net.ipv4.conf.lo.arp_announce")


def sysctls(lab: Lab) -> dict[str, str]:
    return {k: lab.run("rs1", "sysctl", "-n", k).stdout.strip() for k in SYSCTLS}


def lo_addrs(lab: Lab) -> str:
    return lab.run("rs1", "ip", "-4", "addr", "show", "dev", "lo").stdout


def test_rs_setup_start_is_idempotent_and_stop_restores(tmp_path: Path) -> None:
    with Lab({"rs1": "10.0.0.10"}, workdir=tmp_path) as lab:
        check(lab, tmp_path / "rs-setup.json")


def check(lab: Lab, state: Path) -> None:
    cmd = [sys.executable, "-m", "ipvsctl", "rs-setup", "--vip", "10.0.0.100",
           "--state", str(state)]
    # Whatever rs1 had before (an odd value on purpose) must come back on stop.
    lab.run("rs1", "sysctl", "-qw", "net.ipv4.conf.all.arp_announce=1")
    before = sysctls(lab)
    lab.run("rs1", *cmd, "start")
    after = sysctls(lab)
    assert after == {SYSCTLS[0]: "1", SYSCTLS[1]: "2", SYSCTLS[2]: "1", SYSCTLS[3]: "2"}
    assert "10.0.0.100/32" in lo_addrs(lab) and "lo:1" in lo_addrs(lab)
    lab.run("rs1", *cmd, "start")  # again: nothing changes, nothing doubles
    assert sysctls(lab) == after and lo_addrs(lab).count("10.0.0.100") == 1
    lab.run("rs1", *cmd, "stop")
    assert sysctls(lab) == before
    assert "10.0.0.100" not in lo_addrs(lab)

"""The lab itself must be trustworthy before it judges pyvrrp."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from decode import garps, vrrp_adverts

from pyvrrp.lab.topology import PREFIX, Lab, cleanup_stale, netns_exists, wait_for

VIP = "10.0.0.100"


def ping(lab: Lab, src: str, dst: str) -> bool:
    return lab.run(src, "ping", "-c", "1", "-W", "1", dst, check=False).returncode == 0


def scapy_in(lab: Lab, host: str, code: str) -> None:
    """Run scapy code inside host's namespace (the venv's python, bounded)."""
    lab.run(host, sys.executable, "-c", textwrap.dedent(code), timeout=30)


def root_ns_ipv4() -> list[str]:
    out = subprocess.run(["ip", "-j", "-4", "addr"], capture_output=True, text=True, check=True)
    return [a["local"] for link in json.loads(out.stdout) for a in link.get("addr_info", [])]


def test_hosts_reach_each_other(lab: Lab) -> None:
    assert ping(lab, "node1", "10.0.0.201")
    assert ping(lab, "node1", "10.0.0.50")
    assert lab.ipv4_addrs("node1") == ["10.0.0.200/24"]
    assert lab.holders("10.0.0.201") == ["node2"]
    assert lab.neigh_mac("node1", "10.0.0.201") == lab.mac("node2")
    assert lab.neigh_mac("node1", "10.0.0.99") is None


def test_root_namespace_untouched(lab: Lab) -> None:
    assert not [a for a in root_ns_ipv4() if a.startswith("10.0.0.")]
    links = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True).stdout
    assert not {line.split("@")[0].split()[0] for line in links.splitlines()} & {
        "br0",
        "node1",
        "node2",
        "client",
    }


def test_extra_hosts_and_vip_holders(tmp_path: Path) -> None:
    with Lab({"rs1": "10.0.0.10", "rs2": "10.0.0.20/24"}, workdir=tmp_path) as lab:
        assert set(lab.hosts) == {"node1", "node2", "client", "rs1", "rs2"}
        assert lab.ipv4_addrs("rs1") == ["10.0.0.10/24"]
        assert ping(lab, "client", "10.0.0.20")
        assert lab.holders(VIP) == []
        lab.run("node1", "ip", "addr", "add", f"{VIP}/24", "dev", "eth0")
        assert lab.ipv4_addrs("node1") == ["10.0.0.200/24", f"{VIP}/24"]
        assert lab.holders(VIP) == ["node1"]


def test_close_removes_everything(tmp_path: Path) -> None:
    lab = Lab(workdir=tmp_path)
    with lab:
        names = [lab.ns(h) for h in ("switch", *lab.hosts)]
        assert all(netns_exists(n) for n in names)
        sleeper = lab.popen("node2", ["sleep", "60"], tmp_path / "sleep.log")
        # Not started via popen: must still die with its namespace.
        stray = subprocess.Popen(["ip", "netns", "exec", lab.ns("client"), "sleep", "60"])
        assert wait_for(lambda: _pids(lab.ns("client")), timeout=5)
    assert sleeper.poll() is not None
    assert stray.wait(timeout=5) == -9
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not [n for n in names if n in listed]
    lab.close()  # idempotent


def test_close_runs_on_exception(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="boom"), Lab(workdir=tmp_path) as lab:
        name = lab.ns("node1")
        raise RuntimeError("boom")
    assert not netns_exists(name)


def _pids(ns: str) -> list[str]:
    return subprocess.run(
        ["ip", "netns", "pids", ns], capture_output=True, text=True
    ).stdout.split()


def test_cleanup_stale_only_touches_dead_runs() -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale, alive = f"{PREFIX}{dead.pid}-0-x", f"{PREFIX}{os.getpid()}-99-x"
    try:
        for n in (stale, alive):
            subprocess.run(["ip", "netns", "add", n], check=True)
        assert stale in cleanup_stale()
        assert not netns_exists(stale)
        assert netns_exists(alive)
    finally:
        for n in (stale, alive):
            subprocess.run(["ip", "netns", "del", n], capture_output=True)


def test_cut_and_restore_link(lab: Lab) -> None:
    assert ping(lab, "client", "10.0.0.200")
    lab.cut_link("node1")
    assert not ping(lab, "client", "10.0.0.200")
    assert ping(lab, "client", "10.0.0.201")
    lab.restore_link("node1")
    assert wait_for(lambda: ping(lab, "client", "10.0.0.200"), timeout=5)


def test_capture_decodes_vrrp_and_garp(lab: Lab) -> None:
    with lab.capture() as cap:
        scapy_in(
            lab,
            "node1",
            f"""
            from scapy.all import ARP, IP, Ether, conf, get_if_hwaddr, send, sendp
            from scapy.layers.vrrp import VRRP
            conf.verb = 0
            adv = IP(src="10.0.0.200", dst="233.6.6.6", ttl=255)
            send(adv / VRRP(vrid=50, priority=100, addrlist=["{VIP}"]), iface="eth0")
            send(adv / VRRP(vrid=51, priority=90, chksum=0x1234), iface="eth0")
            mac = get_if_hwaddr("eth0")
            sendp(Ether(src=mac, dst="ff:ff:ff:ff:ff:ff")
                  / ARP(hwsrc=mac, psrc="{VIP}", pdst="{VIP}"), iface="eth0")
        """,
        )
        # tcpdump -U writes each packet as it arrives; wait for all three.
        assert wait_for(lambda: len(cap.packets()) >= 3, timeout=5)
    pkts = cap.packets()
    node1_mac = lab.mac("node1")

    good, bad = vrrp_adverts(pkts)
    assert (good.vrid, good.priority, good.ttl, good.src) == (50, 100, 255, "10.0.0.200")
    assert good.mac == node1_mac
    assert good.addrs == [VIP]
    assert good.checksum_ok
    assert (bad.vrid, bad.checksum_ok) == (51, False)
    assert good.time <= bad.time

    assert [(g.mac, g.ip) for g in garps(pkts)] == [(node1_mac, VIP)]

"""The seed's LVS-DR setups end to end, in the IPVS guest (issue 6).

Topology (pyvrrp/lab): client 10.0.0.50, node1 10.0.0.200 (VRRP MASTER 100) and node2
10.0.0.201 (BACKUP 80) running `python -m pyvrrp run` for the VIP and `ipvsctl run` with
the LVS config; rs1 10.0.0.10 and rs2 10.0.0.20 running nginx (page: their address),
prepared with `ipvsctl rs-setup`; a sorry page from nginx on each director (127.0.0.1:80).

Setup 1: `virtual_server 10.0.0.100 80`; setup 2: `virtual_server fwmark 50` with
`fwmark_rules` marking 80 and 443. Each runs the seed's story with a bounded curl loop from
the client and `ipvsadm -Ln` on the directors as the oracle: 1:1 alternation; rs1 down ->
only rs2 (timed against the configured bound); both down -> the sorry page; both back; the
master director cut off -> the loop goes on through node2.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import yaml

from pyvrrp.lab.nginx import Nginx
from pyvrrp.lab.speakers import Instance, Speaker
from pyvrrp.lab.topology import Lab, wait_for

pytestmark = pytest.mark.netns

VIP = "10.0.0.100"
RS = {"rs1": "10.0.0.10", "rs2": "10.0.0.20"}
HOSTS = {**RS}
# The seed's check: HTTP_GET /index.html 200, connect_timeout 1, retry 3,
# delay_before_retry 1, delay_loop 3.
DELAY_LOOP, RETRY, DELAY_BEFORE_RETRY, CONNECT_TIMEOUT = 3, 3, 1, 1
# rs down: the next check is at most delay_loop away, then RETRY retries each
# delay_before_retry after a failure that takes at most connect_timeout.
FAIL_BOUND = DELAY_LOOP + (RETRY + 1) * CONNECT_TIMEOUT + RETRY * DELAY_BEFORE_RETRY
SLACK = 15.0  # QEMU without KVM: the checker's own latency and our ipvsadm polls
# Under TCG on a busy host Python runs ~60x slower than natively: importing pyvrrp and
# ipvsctl (pyroute2, asyncio) took 26 s alone and over 100 s with the four daemons
# starting together. Their first log line is awaited this long.
DAEMON_START = 400.0
# Under TCG a single `ip netns exec ... ip addr` can take many seconds while the daemons
# start: every command here gets a long timeout (Lab.run's default is 10 s).
CMD_TIMEOUT = 90.0
RS_PATTERN = re.compile(r"->\s+(\S+):(\d+)\s+(\w+)\s+(\d+)")


def _real_server(ip: str) -> dict[str, object]:
    return {"weight": 1, "HTTP_GET": {
        "url": {"path": "/index.html", "status_code": 200},
        "connect_timeout": CONNECT_TIMEOUT, "nb_get_retry": RETRY,
        "delay_before_retry": DELAY_BEFORE_RETRY}}


def services(fwmark: bool) -> dict[str, object]:
    vs: dict[str, object] = {"delay_loop": DELAY_LOOP, "lb_algo": "rr", "lb_kind": "DR",
                             "sorry_server": "127.0.0.1 80",
                             "real_server": {f"{ip} 80": _real_server(ip)
                                             for ip in RS.values()}}
    if fwmark:
        vs["fwmark_rules"] = {"vip": VIP, "ports": [80, 443]}
        return {"virtual_server": {"fwmark 50": vs}}
    vs["protocol"] = "TCP"
    return {"virtual_server": {f"{VIP} 80": vs}}


def _nginx(lab: Lab, host: str, page: str, ports: list[int]) -> Nginx:
    n = Nginx(lab, host, page=page, port=80)
    listen = " ".join(f"listen {p};" for p in ports)
    n.conf.write_text(n.conf.read_text().replace("listen 80;", listen))
    return n.start()


class Setup:
    def __init__(self, lab: Lab, fwmark: bool) -> None:
        self.lab = lab
        self.fwmark = fwmark
        self.ports = [80, 443] if fwmark else [80]
        self.t0 = time.monotonic()

    def say(self, what: str) -> None:
        print(f"[{time.monotonic() - self.t0:6.1f} s] {what}", flush=True)

    def ipvsadm(self, host: str) -> list[tuple[str, str, int]]:
        """The dests of the one service as (addr:port, method, weight)."""
        out = self.lab.run(host, "ipvsadm", "-Ln", timeout=CMD_TIMEOUT).stdout
        return [(f"{a}:{p}", m, int(w)) for a, p, m, w in RS_PATTERN.findall(out)]

    def wait_table(self, host: str, want: set[str], timeout: float) -> float:
        """Seconds until the dests are exactly `want` (addr:port); fails with the table."""
        start = time.monotonic()
        ok = wait_for(lambda: {d for d, _, _ in self.ipvsadm(host)} == want, timeout, 0.3)
        took = time.monotonic() - start
        table = self.lab.run(host, "ipvsadm", "-Ln", timeout=CMD_TIMEOUT).stdout
        assert ok, f"{host}: wanted {sorted(want)} within {timeout:.0f} s, have:\n{table}"
        self.say(f"{host} table {sorted(want)} after {took:.1f} s")
        return took

    def holds_vip(self, host: str) -> bool:
        out = self.lab.run(host, "ip", "-4", "-o", "addr", "show", "dev", "eth0",
                           timeout=CMD_TIMEOUT).stdout
        return f" {VIP}/" in out

    def curl(self, n: int, port: int) -> list[str]:
        script = (f"for i in $(seq {n}); do curl -s -m 2 http://{VIP}:{port}/ || echo FAIL;"
                  " done")
        out = self.lab.run("client", "sh", "-c", script, timeout=n * 3 + CMD_TIMEOUT).stdout
        return [line.strip() for line in out.splitlines() if line.strip()]


def _alternates(pages: list[str]) -> bool:
    pairs = zip(pages, pages[1:], strict=False)
    return set(pages) == set(RS.values()) and all(a != b for a, b in pairs)


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Lab]:
    for tool in ("nginx", "curl"):
        if shutil.which(tool) is None:
            pytest.skip(f"needs {tool}")
    # Every daemon: logs as they come, and a Python traceback on SIGABRT (_dump_logs).
    monkeypatch.setenv("PYTHONUNBUFFERED", "1")
    monkeypatch.setenv("PYTHONFAULTHANDLER", "1")
    with Lab(HOSTS, workdir=tmp_path) as lab:
        yield lab


def _start(lab: Lab, fwmark: bool) -> tuple[Setup, dict[str, Nginx], dict[str, Speaker],
                                             dict[str, subprocess.Popen[bytes]]]:
    s = Setup(lab, fwmark)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    reals = {}
    for host, ip in RS.items():
        out = lab.run(host, sys.executable, "-m", "ipvsctl", "rs-setup", "--vip", VIP,
                      "--state", str(lab.workdir / f"{host}-rs.json"), "start", timeout=CMD_TIMEOUT)
        assert f"{VIP}/32 on lo label lo:1" in out.stdout
        reals[host] = _nginx(lab, host, ip, s.ports)
    cfg = lab.workdir / "services.yaml"
    cfg.write_text(yaml.safe_dump(services(fwmark), sort_keys=False))
    speakers, checkers = {}, {}
    for host, prio, state in (("node1", 100, "MASTER"), ("node2", 80, "BACKUP")):
        _nginx(lab, host, f"sorry from {host}", s.ports)
        speakers[host] = Speaker(lab, host, "pyvrrp",
                                 Instance(priority=prio, state=state, router_id=host)).start()
        checkers[host] = lab.popen(
            host, [sys.executable, "-m", "ipvsctl", "run", str(cfg), "--resync", "10",
                   "--state", str(lab.workdir / f"{host}-owned.json")],
            lab.workdir / f"{host}-ipvsctl.log", env=env)
    s.say("started rs-setup, nginx x4, pyvrrp x2, ipvsctl run x2")
    logs = [(sp.proc, sp.log, r"VRID \d+ on eth0") for sp in speakers.values() if sp.proc]
    logs += [(proc, lab.workdir / f"{host}-ipvsctl.log", r"ipvsctl: INFO starting:")
             for host, proc in checkers.items()]
    for proc, path, pattern in logs:
        ready = wait_for(lambda p=proc, f=path, rx=pattern: p.poll() is not None or re.search(
            rx, f.read_text(errors="replace")) is not None, DAEMON_START, 1.0)
        assert ready and proc.poll() is None, f"{path.name} not started:\n" + _dump_logs(
            lab, [p for p, _, _ in logs])
    s.say("the four daemons are running (their first log lines are out)")
    return s, reals, speakers, checkers


def _dump_logs(lab: Lab, abort: Sequence[subprocess.Popen[bytes]] = ()) -> str:
    """The daemons' logs (ipvsctl, pyvrrp) and what is running, for a failure message.
    The daemons in `abort` get SIGABRT first: faulthandler puts where they were in the log."""
    ps = subprocess.run(["ps", "-eo", "pid,stat,etime,time,args"], capture_output=True,
                        text=True, timeout=CMD_TIMEOUT).stdout
    for proc in abort:
        if proc.poll() is None:
            proc.send_signal(signal.SIGABRT)
    for proc in abort:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)
    logs = [*sorted(lab.workdir.glob("*-ipvsctl.log")), *sorted(lab.workdir.glob("*/log"))]
    return "\n".join([*(f"--- {p.parent.name}/{p.name}\n{p.read_text(errors='replace')[-3000:]}"
                        for p in logs), f"--- ps\n{ps}"])


def _scenario(lab: Lab, fwmark: bool) -> None:
    s, reals, speakers, checkers = _start(lab, fwmark)
    dport = "0" if fwmark else "80"  # fwmark DR dests have port 0 in IPVS
    both = {f"{ip}:{dport}" for ip in RS.values()}
    sorry = {f"127.0.0.1:{dport}"}

    def alive(proc: subprocess.Popen[bytes]) -> bool:
        return proc.poll() is None

    try:
        assert wait_for(lambda: s.holds_vip("node1"), 60, 0.5), "node1 never got the VIP"
        s.say("node1 holds the VIP")
        for host in ("node1", "node2"):
            s.wait_table(host, both, 60)
        assert all(m == "Route" for _, m, _ in s.ipvsadm("node1"))
        if fwmark:
            rules = lab.run("node1", "nft", "list", "table", "inet", "ipvsctl",
                            timeout=CMD_TIMEOUT).stdout
            assert "meta mark set 0x00000032" in rules and "dport { 80, 443 }" in rules, rules
        for port in s.ports:
            pages = s.curl(6, port)
            s.say(f"port {port}: {pages}")
            assert _alternates(pages), f"port {port}: not 1:1: {pages}"

        # rs1's nginx stops: out once its check has failed, within the configured bound.
        reals["rs1"].stop()
        took = s.wait_table("node1", {f"10.0.0.20:{dport}"}, FAIL_BOUND + SLACK)
        s.say(f"rs1 removed {took:.1f} s after nginx stopped (bound {FAIL_BOUND} s: "
              f"delay_loop + retries)")
        # retry 3, 1 s apart: never before the retries are spent
        assert took >= RETRY * DELAY_BEFORE_RETRY - 0.5, took
        for port in s.ports:
            pages = s.curl(4, port)
            assert pages == ["10.0.0.20"] * 4, f"port {port}: {pages}"

        # both down: the sorry server (weight 1) and the sorry page.
        reals["rs2"].stop()
        s.wait_table("node1", sorry, FAIL_BOUND + SLACK)
        assert s.ipvsadm("node1") == [(f"127.0.0.1:{dport}", "Route", 1)]
        for port in s.ports:
            pages = s.curl(3, port)
            assert pages == ["sorry from node1"] * 3, f"port {port}: {pages}"
        s.say("sorry page served")

        # both back: the sorry server goes, the real servers return at weight 1.
        reals["rs1"].start()
        reals["rs2"].start()
        took = s.wait_table("node1", both, 2 * DELAY_LOOP + RETRY + SLACK)
        assert sorted(w for _, _, w in s.ipvsadm("node1")) == [1, 1]
        s.say(f"real servers back after {took:.1f} s")
        for port in s.ports:
            assert _alternates(s.curl(4, port)), port
        s.wait_table("node2", both, 2 * DELAY_LOOP + RETRY + SLACK)

        # the master director fails (its link is cut): node2 takes the VIP, the loop goes on.
        assert all(alive(p) for p in checkers.values()), _dump_logs(lab)
        t_cut = time.monotonic()
        lab.run("switch", "ip", "link", "set", "node1", "down", timeout=CMD_TIMEOUT)
        assert wait_for(lambda: s.holds_vip("node2"), 30, 0.3), "node2 never took the VIP"
        s.say(f"node2 holds the VIP {time.monotonic() - t_cut:.1f} s after the cut")
        got_page = wait_for(lambda: s.curl(1, s.ports[0])[0] in RS.values(), 20, 0.2)
        s.say(f"first page through node2 {time.monotonic() - t_cut:.1f} s after the cut")
        assert got_page
        for port in s.ports:
            pages = s.curl(6, port)
            s.say(f"through node2, port {port}: {pages}")
            assert _alternates(pages), f"port {port}: {pages}"
        s.wait_table("node2", both, 2 * DELAY_LOOP + RETRY + SLACK)
    except AssertionError:
        daemons = [*checkers.values(), *(sp.proc for sp in speakers.values() if sp.proc)]
        print(_dump_logs(lab, daemons))
        raise
    finally:
        lab.run("switch", "ip", "link", "set", "node1", "up", timeout=CMD_TIMEOUT)

    # SIGTERM: ipvsctl removes the services it owns and, for setup 2, its nft table.
    proc = checkers["node2"]
    proc.terminate()
    proc.wait(30)
    assert proc.returncode == 0, _dump_logs(lab)
    assert s.ipvsadm("node2") == []
    assert "FWM 50" not in lab.run("node2", "ipvsadm", "-Ln", timeout=CMD_TIMEOUT).stdout
    if fwmark:
        listed = lab.run("node2", "nft", "list", "tables", check=False,
                         timeout=CMD_TIMEOUT).stdout
        assert "ipvsctl" not in listed, listed
    s.say("node2's ipvsctl stopped: services (and rules) removed")


def test_setup1_lvs_dr_by_ip_port(lab: Lab) -> None:
    _scenario(lab, fwmark=False)


def test_setup2_lvs_dr_by_fwmark(lab: Lab) -> None:
    if shutil.which("nft") is None:
        pytest.skip("setup 2's fwmark_rules need nft (apt install nftables)")
    _scenario(lab, fwmark=True)

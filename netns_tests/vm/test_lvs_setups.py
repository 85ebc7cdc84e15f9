"""The seed's LVS-DR setups end to end, in the IPVS guest (issue 6).

Topology (pyvrrp/lab): client 10.0.0.50; directors node1 10.0.0.200 and node2 10.0.0.201,
each running `pyvrrp run` on its combined VRRP + LVS config (the parent starts the VRRP and
checker children, as keepalived does); rs1 10.0.0.10 and rs2 10.0.0.20 running nginx (page:
their address) on 80 and 443, prepared with `ipvsctl rs-setup`; a sorry page from nginx on
each director (127.0.0.1). One lab serves both setups: the directors are stopped between.

Setup 1: both directors run the seed's keepalived.conf files as they are
(config/keepalived/lvs-dr-ipport: `virtual_server 10.0.0.100 80`). Setup 2
(`virtual_server fwmark 50`, ports 80 and 443): node1 runs the seed's keepalived.conf with
the seed's hand-made iptables mark; node2 runs the YAML form (config/lvs-dr-fwmark), whose
`fwmark_rules` installs the mark itself. Each runs the seed's story with curl from the
client and `ipvsadm -Ln` on the directors as the oracle: 1:1 alternation; rs1 down -> only
rs2 (timed against the configured bound); both down -> the sorry page; both back; pyvrrp
stopped on the master -> node2 takes the VIP and the client loop goes on; pyvrrp started
again -> node1 preempts back; node1's link cut -> node2 takes over and the loop goes on;
both stopped -> their services (and our mark) are gone and the user's iptables rule is
untouched.
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
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pyvrrp.lab.nginx import ClientLoop, Nginx
from pyvrrp.lab.topology import Lab, wait_for

pytestmark = pytest.mark.netns

CONFIG = Path(__file__).resolve().parents[2] / "config"
VIP = "10.0.0.100"
RS = {"rs1": "10.0.0.10", "rs2": "10.0.0.20"}
DIRECTORS = ("node1", "node2")
PORTS = (80, 443)
# The seed's check: HTTP_GET /index.html 200, connect_timeout 1, nb_get_retry 3,
# delay_before_retry 1, delay_loop 3.
DELAY_LOOP, RETRY, DELAY_BEFORE_RETRY, CONNECT_TIMEOUT = 3, 3, 1, 1
# rs down: the next check is at most delay_loop away, then RETRY retries each
# delay_before_retry after a failure that takes at most connect_timeout.
FAIL_BOUND = DELAY_LOOP + (RETRY + 1) * CONNECT_TIMEOUT + RETRY * DELAY_BEFORE_RETRY
SLACK = 15.0  # QEMU without KVM: the checker's own latency and our ipvsadm polls
# Under TCG on a busy host Python runs ~60x slower than natively: each director starts
# three interpreters (the parent, the VRRP and the checker child) that import the project
# and pyroute2. Their first log lines are awaited this long.
DAEMON_START = 400.0
# Under TCG a single `ip netns exec ... ip addr` can take many seconds while the daemons
# start: every command here gets a long timeout (Lab.run's default is 10 s).
CMD_TIMEOUT = 90.0
RS_PATTERN = re.compile(r"->\s+(\S+):(\d+)\s+(\w+)\s+(\d+)")
SEED_MARK = ["-d", VIP, "-p", "tcp", "-m", "multiport", "--dports", "80,443",
             "-j", "MARK", "--set-mark", "50"]


def _nginx(lab: Lab, host: str, page: str) -> Nginx:
    n = Nginx(lab, host, page=page, port=80)
    n.conf.write_text(n.conf.read_text().replace(
        "listen 80;", " ".join(f"listen {p};" for p in PORTS)))
    return n.start()


class Director:
    """`pyvrrp run` on one director, as a user starts it; one log per start."""

    def __init__(self, lab: Lab, host: str, argv: list[str]) -> None:
        self.lab, self.host, self.argv = lab, host, argv
        self.starts = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = lab.workdir / f"{host}-pyvrrp.log"

    def start(self) -> Director:
        self.starts += 1
        self.log = self.lab.workdir / f"{self.host}-pyvrrp-{self.starts}.log"
        env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONFAULTHANDLER="1")
        self.proc = self.lab.popen(self.host, [sys.executable, "-m", "pyvrrp", "run",
                                               *self.argv], self.log, env=env)
        return self

    def ready(self) -> bool:
        """Both children have logged their first line (or the parent died)."""
        assert self.proc is not None
        text = self.log.read_text(errors="replace")
        return self.proc.poll() is not None or (
            re.search(r"VRID \d+ on eth0", text) is not None
            and "ipvsctl: INFO starting:" in text)

    def stop(self) -> int:
        """SIGTERM to the parent (`ip netns exec` has exec'd it): it stops both children."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class Story:
    def __init__(self, lab: Lab, reals: dict[str, Nginx], ports: tuple[int, ...],
                 dport: str) -> None:
        self.lab, self.reals, self.ports = lab, reals, ports
        self.both = {f"{ip}:{dport}" for ip in RS.values()}
        self.sorry = {f"127.0.0.1:{dport}"}
        self.only_rs2 = {f"10.0.0.20:{dport}"}
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

    def alternates(self, n: int = 6) -> None:
        for port in self.ports:
            pages = self.curl(n, port)
            self.say(f"port {port}: {pages}")
            assert _alternates(pages), f"port {port}: not 1:1 between rs1 and rs2: {pages}"


def _alternates(pages: list[str]) -> bool:
    pairs = zip(pages, pages[1:], strict=False)
    return set(pages) == set(RS.values()) and all(a != b for a, b in pairs)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Lab, dict[str, Nginx]]]:
    """The lab, with the real servers prepared and serving and the sorry pages up."""
    for tool in ("nginx", "curl"):
        if shutil.which(tool) is None:
            pytest.skip(f"needs {tool}")
    with Lab(RS, workdir=tmp_path_factory.mktemp("lvs")) as lab:
        reals = {}
        for host, ip in RS.items():
            out = lab.run(host, sys.executable, "-m", "ipvsctl", "rs-setup", "--vip", VIP,
                          "--state", str(lab.workdir / f"{host}-rs.json"), "start",
                          timeout=CMD_TIMEOUT)
            assert f"{VIP}/32 on lo label lo:1" in out.stdout
            reals[host] = _nginx(lab, host, ip)
        for host in DIRECTORS:
            _nginx(lab, host, f"sorry from {host}")
        yield lab, reals


def _dump_logs(lab: Lab, directors: dict[str, Director]) -> str:
    """The directors' logs and what is running, for a failure message. Running daemons get
    SIGABRT first: faulthandler puts where each Python process was in the log."""
    ps = subprocess.run(["ps", "-eo", "pid,ppid,stat,etime,time,args"], capture_output=True,
                        text=True, timeout=CMD_TIMEOUT).stdout
    for d in directors.values():
        if d.running():
            with contextlib.suppress(ProcessLookupError):
                subprocess.run(["pkill", "-ABRT", "-s", str(d.proc.pid)], check=False)  # type: ignore[union-attr]
    time.sleep(5)
    logs = sorted(lab.workdir.glob("*-pyvrrp-*.log"))
    return "\n".join([*(f"--- {p.name}\n{p.read_text(errors='replace')[-4000:]}" for p in logs),
                      f"--- ps\n{ps}"])


def _start(story: Story, directors: dict[str, Director]) -> None:
    for d in directors.values():
        d.start()
    for d in directors.values():
        ready = wait_for(d.ready, DAEMON_START, 1.0)
        assert ready and d.running(), f"{d.host}: pyvrrp run did not start"
    story.say(f"pyvrrp run on {', '.join(directors)}: the children of each have started")


def _scenario(lab: Lab, reals: dict[str, Nginx], directors: dict[str, Director],
              ports: tuple[int, ...], dport: str, started: Callable[[], None]) -> Story:
    s = Story(lab, reals, ports, dport)
    _start(s, directors)
    assert wait_for(lambda: s.holds_vip("node1"), 60, 0.5), "node1 never got the VIP"
    assert not s.holds_vip("node2")
    s.say("node1 holds the VIP")
    for host in DIRECTORS:
        s.wait_table(host, s.both, 60)
    started()
    assert all((m, w) == ("Route", 1) for _, m, w in s.ipvsadm("node1"))
    s.alternates()

    # rs1's nginx stops: out once its check has failed, within the configured bound.
    reals["rs1"].stop()
    took = s.wait_table("node1", s.only_rs2, FAIL_BOUND + SLACK)
    s.say(f"rs1 removed {took:.1f} s after nginx stopped (bound {FAIL_BOUND} s: "
          "delay_loop + retries)")
    assert took >= RETRY * DELAY_BEFORE_RETRY - 0.5, "removed before the retries were spent"
    for port in ports:
        pages = s.curl(4, port)
        assert pages == ["10.0.0.20"] * 4, f"port {port}: {pages}"

    # both down: the sorry server (weight 1) and the sorry page.
    reals["rs2"].stop()
    s.wait_table("node1", s.sorry, FAIL_BOUND + SLACK)
    assert s.ipvsadm("node1") == [(f"127.0.0.1:{dport}", "Route", 1)]
    for port in ports:
        pages = s.curl(3, port)
        assert pages == ["sorry from node1"] * 3, f"port {port}: {pages}"
    s.say("sorry page served")

    # both back: the sorry server goes, the real servers return at weight 1.
    reals["rs1"].start()
    reals["rs2"].start()
    took = s.wait_table("node1", s.both, 2 * DELAY_LOOP + RETRY + SLACK)
    assert sorted(w for _, _, w in s.ipvsadm("node1")) == [1, 1]
    s.say(f"real servers back after {took:.1f} s")
    s.alternates(4)
    s.wait_table("node2", s.both, 2 * DELAY_LOOP + RETRY + SLACK)

    # pyvrrp stopped on the master: node2 takes the VIP and the client's loop goes on.
    loop = ClientLoop(lab, "client", f"http://{VIP}:{ports[0]}/", count=30, interval=0.3,
                      timeout=2.0)
    time.sleep(2)
    t_stop = time.monotonic()
    assert directors["node1"].stop() == 0
    assert wait_for(lambda: s.holds_vip("node2"), 30, 0.3), "node2 never took the VIP"
    s.say(f"node2 holds the VIP {time.monotonic() - t_stop:.1f} s after pyvrrp stopped")
    assert not s.holds_vip("node1")
    assert s.ipvsadm("node1") == [], "node1's services outlived its pyvrrp"
    pages = loop.wait()
    s.say(f"client loop across the stop: {len(pages)} requests, "
          f"{pages.count('FAIL')} failed: {pages}")
    assert pages and set(pages) <= {*RS.values(), "FAIL"} and pages[-1] in RS.values()
    s.alternates()

    # started again: node1 (priority 100, state MASTER) preempts, its table comes back.
    t_start = time.monotonic()
    _start(s, {"node1": directors["node1"]})
    assert wait_for(lambda: s.holds_vip("node1"), 60, 0.3), "node1 did not preempt"
    s.say(f"node1 holds the VIP again {time.monotonic() - t_start:.1f} s after its start")
    assert not s.holds_vip("node2")
    s.wait_table("node1", s.both, 60)
    s.alternates()

    # the master director fails hard (its link is cut): node2 takes over once its
    # Master_Down_Interval (3 x 1 s + skew) passes, and the loop goes on through node2.
    t_cut = time.monotonic()
    lab.run("switch", "ip", "link", "set", "node1", "down", timeout=CMD_TIMEOUT)
    try:
        assert wait_for(lambda: s.holds_vip("node2"), 30, 0.3), "node2 never took the VIP"
        s.say(f"node1's link cut: node2 holds the VIP {time.monotonic() - t_cut:.1f} s later")
        assert wait_for(lambda: s.curl(1, ports[0])[0] in RS.values(), 20, 0.2)
        s.say(f"first page through node2 {time.monotonic() - t_cut:.1f} s after the cut")
        s.alternates()
    finally:
        lab.run("switch", "ip", "link", "set", "node1", "up", timeout=CMD_TIMEOUT)
    return s


def _stop_all(s: Story, directors: dict[str, Director]) -> None:
    """Both stopped: exit 0, and the services they programmed are gone."""
    for host, d in directors.items():
        assert d.stop() == 0, f"{host}: pyvrrp run did not exit cleanly"
        table = s.lab.run(host, "ipvsadm", "-Ln", timeout=CMD_TIMEOUT).stdout
        assert not re.search(r"^(TCP|FWM) ", table, re.M), f"{host} kept a service:\n{table}"
    s.say("both directors stopped: their services are gone")


def _run(lab: Lab, reals: dict[str, Nginx], directors: dict[str, Director],
         ports: tuple[int, ...], dport: str, started: Callable[[], None] = lambda: None
         ) -> Story:
    for n in reals.values():
        if not n.running():
            n.start()
    try:
        s = _scenario(lab, reals, directors, ports, dport, started)
        _stop_all(s, directors)
        return s
    except AssertionError:
        print(_dump_logs(lab, directors))
        raise
    finally:
        for d in directors.values():
            if d.running():
                with contextlib.suppress(subprocess.TimeoutExpired):
                    d.stop()


def _seed(setup: str, host: str) -> list[str]:
    root = CONFIG / "keepalived" / setup / host
    return ["--root", str(root), str(root / "etc/keepalived/keepalived.conf")]


def test_setup1_lvs_dr_by_ip_port(lab: tuple[Lab, dict[str, Nginx]]) -> None:
    the_lab, reals = lab
    directors = {h: Director(the_lab, h, _seed("lvs-dr-ipport", h)) for h in DIRECTORS}
    _run(the_lab, reals, directors, (80,), "80")


def test_setup2_lvs_dr_by_fwmark(lab: tuple[Lab, dict[str, Nginx]]) -> None:
    the_lab, reals = lab
    for tool in ("nft", "iptables"):
        if shutil.which(tool) is None:
            pytest.skip(f"setup 2 needs {tool} (apt install nftables iptables)")
    # node1 as the seed has it: its keepalived.conf and the iptables mark by hand; node2
    # from the YAML form, which marks with fwmark_rules (nftables) itself.
    the_lab.run("node1", "iptables", "-t", "mangle", "-A", "PREROUTING", *SEED_MARK,
                timeout=CMD_TIMEOUT)
    directors = {"node1": Director(the_lab, "node1", _seed("lvs-dr-fwmark", "node1")),
                 "node2": Director(the_lab, "node2", [str(CONFIG / "lvs-dr-fwmark/node2.yaml")])}

    def nft_tables(host: str) -> str:
        return the_lab.run(host, "nft", "list", "tables", check=False,
                           timeout=CMD_TIMEOUT).stdout

    def rules_in_place() -> None:
        rules = the_lab.run("node2", "nft", "list", "table", "inet", "ipvsctl",
                            timeout=CMD_TIMEOUT).stdout
        assert "meta mark set 0x00000032" in rules and "dport { 80, 443 }" in rules, rules
        assert "ipvsctl" not in nft_tables("node1"), "node1's config has no fwmark_rules"

    # fwmark DR dests have port 0 in IPVS
    s = _run(the_lab, reals, directors, PORTS, "0", rules_in_place)
    assert "ipvsctl" not in nft_tables("node2"), "fwmark_rules outlived the service"
    assert "ipvsctl" not in nft_tables("node1")
    kept = the_lab.run("node1", "iptables", "-t", "mangle", "-S", "PREROUTING",
                       timeout=CMD_TIMEOUT).stdout
    assert "--set-xmark 0x32/0xffffffff" in kept, f"the user's mark rule was touched:\n{kept}"
    s.say("node1's own iptables mark is untouched")

"""The seed's setup 3: nginx reverse-proxy HA with a tracked check_nginx script.

Real nginx everywhere: rs1 and rs2 serve a page naming them, node1 and node2 proxy to
both (upstream weight 1 each) and run pyvrrp with `check_nginx` (interval 1, weight -30,
fall 3, rise 5, timeout 2), both `state BACKUP`, priorities 100 and 80. A bounded curl
loop on the client is the judge.
"""

from __future__ import annotations

import re
import time

import pytest

from pyvrrp.core.timers import master_down_interval
from pyvrrp.lab.nginx import ClientLoop, Nginx
from pyvrrp.lab.speakers import VIP, Instance, Speaker
from pyvrrp.lab.topology import Lab, wait_for

RS = {"rs1": "10.0.0.10", "rs2": "10.0.0.20"}
URL = f"http://{VIP}/"


def check_nginx(path: str) -> dict[str, object]:
    return {"script": path, "interval": 1, "weight": -30, "fall": 3, "rise": 5, "timeout": 2}


@pytest.fixture
def lab3(tmp_path_factory: pytest.TempPathFactory) -> Lab:
    return Lab(dict(RS), workdir=tmp_path_factory.mktemp("setup3"))


def alternates(results: list[str]) -> bool:
    pairs = zip(results, results[1:], strict=False)
    return set(results) == set(RS.values()) and all(a != b for a, b in pairs)


def test_setup3_nginx_failure_moves_the_vip_and_self_healing_wins_it_back(lab3: Lab) -> None:
    with lab3 as lab:
        for host, addr in RS.items():
            Nginx(lab, host, page=addr).start()
        proxies = {h: Nginx(lab, h, upstreams=[f"{a}:80" for a in RS.values()]).start()
                   for h in ("node1", "node2")}
        scripts = {h: p.check_script() for h, p in proxies.items()}
        speakers = {
            h: Speaker(lab, h, "pyvrrp", Instance(
                priority=prio, state="BACKUP", router_id=h,
                scripts={"check_nginx": check_nginx(str(scripts[h]))},
                track_script=["check_nginx"])).start()
            for h, prio in (("node1", 100), ("node2", 80))}
        assert wait_for(lambda: lab.holders(VIP) == ["node1"], 10), speakers["node1"].log_text()

        # The client sees rs1 and rs2 alternate 1:1 through the VIP.
        first = ClientLoop(lab, "client", URL, 20, interval=0.05).wait()
        assert len(first) == 20 and alternates(first), first

        # nginx dies on the master: 3 failed checks take it to 70 < 80, the VIP moves.
        loop = ClientLoop(lab, "client", URL, 150, interval=0.1)
        time.sleep(1)
        killed = time.monotonic()
        proxies["node1"].kill()
        bound = 3 * 1 + 1 + master_down_interval(80, 1, 2) + 1.5
        assert wait_for(lambda: lab.holders(VIP) == ["node2"], bound), \
            speakers["node1"].log_text()
        moved = time.monotonic() - killed
        assert re.search(r"Changing effective priority to 70", speakers["node1"].log_text())
        results = loop.wait()
        failed = results.count("FAIL")
        print(f"\nVIP moved {moved:.2f}s after nginx died; the client loop had "
              f"{failed} failed requests of {len(results)}")
        assert len(results) == 150
        assert 0 < failed < 100, "requests fail only while the VIP is on the dead proxy"
        tail = results[-30:]
        assert "FAIL" not in tail and alternates(tail), tail

        # Self-healing: check_nginx now restarts nginx; after 5 successes node1 is back
        # at 100 and preempts the VIP.
        scripts["node1"].write_text(proxies["node1"].check_script(heal=True).read_text())
        healed = time.monotonic()
        bound = 1 + 5 + master_down_interval(100, 1, 2) + 2
        assert wait_for(lambda: lab.holders(VIP) == ["node1"], bound), \
            speakers["node1"].log_text()
        print(f"nginx restarted by the check; VIP back on node1 after "
              f"{time.monotonic() - healed:.2f}s")
        assert proxies["node1"].running()

        # And when nginx dies again on the master, the check restarts it at once: the
        # VIP stays, the client keeps being served.
        loop = ClientLoop(lab, "client", URL, 60, interval=0.1)
        time.sleep(1)
        proxies["node1"].kill()
        stayed = not wait_for(lambda: lab.holders(VIP) != ["node1"], 6)
        results = loop.wait()
        print(f"second crash: {results.count('FAIL')} failed requests of {len(results)}")
        assert stayed, speakers["node1"].log_text()
        assert proxies["node1"].running()
        assert results.count("FAIL") <= 30  # about two check intervals at 0.1 s a request
        assert "FAIL" not in results[-20:]

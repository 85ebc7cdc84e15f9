"""Reconciler and CLI against a real IPVS kernel; `ipvsadm` is the oracle throughout."""

from __future__ import annotations

import json
import logging
import random
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from ipaddress import ip_address
from pathlib import Path

import pytest
from ipvs_oracle import kernel_schedulers
from pyroute2 import netns as pr_netns

from ipvsctl import cli
from ipvsctl.config import loads
from ipvsctl.desired import table_from
from ipvsctl.diff import Kind, Op
from ipvsctl.kernel import IpvsKernel
from ipvsctl.listing import render
from ipvsctl.model import AF_INET6, RealServer, Table, VirtualServer
from ipvsctl.reconciler import Reconciler

Adm = Callable[..., str]


def random_vs(rng: random.Random, i: int, scheds: list[str]) -> VirtualServer:
    shape = rng.choice(["v4", "v4", "v4", "v6", "fwm4", "fwm6"])
    v6 = shape in ("v6", "fwm6")
    sched = rng.choice(scheds)
    method = rng.choice(["NAT", "DR", "TUN"])
    reals = []
    for j in range(rng.randint(0, 5)):
        u = rng.choice([0, 0, 500])
        reals.append(RealServer(
            ip_address(f"fd00:30::{i:x}:{j + 1}" if v6 else f"10.30.{i % 250}.{j + 1}"),
            rng.choice([None, 80, 8080]), weight=rng.randint(0, 100),
            lvs_method=rng.choice([None, None, "NAT", "DR"]), uthreshold=u,
            lthreshold=rng.choice([0, 10]) if u else 0))
    persist = rng.random() < 0.3
    proto = rng.choice(["TCP", "UDP", "SCTP"])
    common = dict(
        lvs_sched=sched, lvs_method=method, real_server=tuple(reals),
        persistence_timeout=rng.choice([60, 300]) if persist else None,
        persistence_granularity=("64" if v6 else "255.255.255.0")
        if persist and rng.random() < 0.5 else None,
        sched_flags=("sh-port",) if sched == "sh" and rng.random() < 0.5 else (),
    )
    if shape.startswith("fwm"):
        return VirtualServer(fwmark=1000 + i, ip_family="inet6" if v6 else "inet",
                             ops=rng.random() < 0.2, **common)  # type: ignore[arg-type]
    ip = ip_address(f"fd00:20::{i + 1:x}" if v6 else f"10.20.{i // 250}.{i % 250 + 1}")
    return VirtualServer(ip=ip, port=rng.choice([80, 443, 53]), protocol=proto,
                         ops=proto == "UDP" and rng.random() < 0.3,
                         **common)  # type: ignore[arg-type]


def thresholds(text: str) -> set[tuple[str, int, int]]:
    out = set()
    for line in text.splitlines()[3:]:
        if line.startswith("  -> "):
            f = line.split()
            out.add((f[1], int(f[2]), int(f[3])))
    return out


def test_round_trip_of_200_random_services(ns: str, kernel: IpvsKernel, ipvsadm: Adm,
                                           tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    rng = random.Random(20260)
    desired = table_from(random_vs(rng, i, kernel_schedulers()) for i in range(200))
    assert len(desired.services) == 200
    rec = Reconciler(kernel, tmp_path / "owned.json")
    report = rec.apply(desired)
    assert report.ok, [str(e) for e in report.errors]
    assert len(report.ops) == 200 + desired.dest_count()

    # The oracle: ipvsadm's view of the kernel, against the table we asked for.
    adm = ipvsadm("-Ln")
    version, size = kernel.info()
    assert adm == render(desired, version, size)
    want_thresh = {(f"[{d.addr}]:{d.port}" if ":" in d.addr else f"{d.addr}:{d.port}",
                    d.u_thresh, d.l_thresh)
                   for ds in desired.dests.values() for d in ds.values()}
    assert thresholds(ipvsadm("-Ln", "--thresholds")) == want_thresh
    # Our own dump reads back the same table, with and without the counters.
    assert kernel.dump(stats=False) == desired
    assert kernel.dump() == desired
    # `ipvsctl list` prints what ipvsadm prints.
    assert cli.main(["--netns", ns, "list"]) == 0
    assert capsys.readouterr().out == adm

    # Again: nothing to do.
    assert rec.apply(desired).ops == ()

    # One destination changes: exactly one op, and ipvsadm sees it.
    key = next(k for k in sorted(desired.services) if desired.dests_of(k))
    dk, d = next(iter(desired.dests_of(key).items()))
    changed = Table(desired.services, {**desired.dests, key: {
        **desired.dests_of(key), dk: replace(d, weight=d.weight + 1)}})
    report = rec.apply(changed)
    assert [(op.kind, op.dest) for op in report.ops] == \
        [(Kind.EDIT_DEST, replace(d, weight=d.weight + 1))]
    assert ipvsadm("-Ln") == render(changed, version, size)


def test_update_sends_only_the_delta_and_resync_repairs_what_it_cannot_see(
        kernel: IpvsKernel, ipvsadm: Adm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(77)
    desired = table_from(random_vs(rng, i, kernel_schedulers()) for i in range(120))
    rec = Reconciler(kernel, tmp_path / "owned.json")
    assert rec.apply(desired).ok
    version, size = kernel.info()
    real_dump = kernel.dump

    def no_dump(stats: bool = True) -> Table:
        raise AssertionError("the update path must not dump the kernel")

    monkeypatch.setattr(kernel, "dump", no_dump)
    keys = [k for k in sorted(desired.services) if len(desired.dests_of(k)) >= 2]
    a, b, c = keys[0], keys[1], keys[-1]
    # One weight: one op; the table is derived, sharing every untouched entry.
    (dk, d), (_, d2) = list(desired.dests_of(a).items())[:2]
    one = Table(desired.services, {**desired.dests, a: {**desired.dests_of(a),
                                                        dk: replace(d, weight=d.weight + 7)}})
    report = rec.update(one)
    assert [(op.kind, op.dest) for op in report.ops] == \
        [(Kind.EDIT_DEST, replace(d, weight=d.weight + 7))]
    assert ipvsadm("-Ln") == render(one, version, size)
    # Several kinds at once: a dest out, a dest in, a service gone.
    out_key, bd = next(iter(one.dests_of(b).items()))
    new_dest = replace(bd, addr="fd00:31::1" if bd.af == AF_INET6 else "10.31.0.1")
    b_dests = {k: v for k, v in one.dests_of(b).items() if k != out_key}
    b_dests[new_dest.key] = new_dest
    services = {k: v for k, v in one.services.items() if k != c}
    dests = {k: v for k, v in one.dests.items() if k != c}
    two = Table(services, {**dests, b: b_dests})
    report = rec.update(two)
    assert sorted(op.kind.value for op in report.ops) == \
        ["add-dest", "del-dest", "del-service"]
    assert report.ok
    assert ipvsadm("-Ln") == render(two, version, size)
    # Behind our back: the update path cannot see it (no dump) ...
    ipvsadm(*str(Op(Kind.EDIT_DEST, two.services[a], replace(d2, weight=99))).split())
    assert rec.update(two).ops == ()
    # ... the periodic resync dumps, sees it, and repairs it.
    monkeypatch.setattr(kernel, "dump", real_dump)
    report = rec.resync()
    assert [(op.kind, op.dest) for op in report.ops] == [(Kind.EDIT_DEST, d2)]
    assert ipvsadm("-Ln") == render(two, version, size)


def test_resync_repairs_drift_and_leaves_foreign_services(kernel: IpvsKernel, ipvsadm: Adm,
                                                          tmp_path: Path,
                                                          caplog: pytest.LogCaptureFixture
                                                          ) -> None:
    ipvsadm("-A", "-t", "10.77.0.1:80", "-s", "rr")  # someone else's, added by hand
    ipvsadm("-a", "-t", "10.77.0.1:80", "-r", "10.77.1.1:80", "-m", "-w", "4")
    foreign = [line for line in ipvsadm("-Ln").splitlines() if "10.77." in line]
    conf = loads("""
virtual_server:
  10.70.0.1 80:
    protocol: TCP
    lb_algo: rr
    real_server: {10.70.1.1 80: {weight: 2}, 10.70.1.2 80: {weight: 3}}
  10.70.0.2 80:
    protocol: TCP
    lb_algo: wlc
    real_server: {10.70.2.1 80: {}}
""")
    desired = table_from(conf.virtual_servers)
    rec = Reconciler(kernel, tmp_path / "owned.json")
    assert rec.apply(desired).ok
    # Behind our back:
    ipvsadm("-d", "-t", "10.70.0.1:80", "-r", "10.70.1.1:80")
    ipvsadm("-e", "-t", "10.70.0.1:80", "-r", "10.70.1.2:80", "-m", "-w", "9")
    ipvsadm("-D", "-t", "10.70.0.2:80")
    with caplog.at_level(logging.WARNING, logger="ipvsctl"):
        report = rec.resync()
    assert report.ok
    assert sorted(str(op) for op in report.ops) == sorted([
        "-A -t 10.70.0.2:80 -s wlc",
        "-a -t 10.70.0.1:80 -r 10.70.1.1:80 -m -w 2",
        "-a -t 10.70.0.2:80 -r 10.70.2.1:80 -m -w 1",
        "-e -t 10.70.0.1:80 -r 10.70.1.2:80 -m -w 3",
    ])
    assert caplog.text.count("resync repaired") == 4
    version, size = kernel.info()
    adm = ipvsadm("-Ln")
    assert [line for line in adm.splitlines() if "10.77." in line] == foreign
    assert rec.resync().ops == ()
    # Dropping a service from the config deletes ours, never the foreign one.
    report = rec.apply(table_from(conf.virtual_servers[:1]))
    assert [str(op) for op in report.ops] == ["-D -t 10.70.0.2:80"]
    adm = ipvsadm("-Ln")
    assert "10.70.0.2" not in adm and "10.77.0.1:80" in adm


def test_restart_without_flush_keeps_connections(ns: str, kernel: IpvsKernel, ipvsadm: Adm,
                                                 tmp_path: Path) -> None:
    # A client namespace on a veth pair; the VIP sits on the director's lo.
    client = f"{ns}c"
    for cmd in (f"netns add {client}",
                f"link add v0 netns {ns} type veth peer name v1 netns {client}",
                f"-n {ns} addr add 10.88.2.1/24 dev v0", f"-n {ns} link set v0 up",
                f"-n {ns} addr add 10.88.0.1/32 dev lo",
                f"-n {client} addr add 10.88.2.2/24 dev v1", f"-n {client} link set v1 up",
                f"-n {client} route add 10.88.0.1/32 via 10.88.2.1"):
        subprocess.run(["ip", *cmd.split()], check=True)
    try:
        _restart(ns, client, kernel, ipvsadm, tmp_path)
    finally:
        subprocess.run(["ip", "netns", "del", client], check=False)


def _restart(ns: str, client: str, kernel: IpvsKernel, ipvsadm: Adm, tmp_path: Path) -> None:
    conf = loads("""
virtual_server:
  10.88.0.1 5353:
    protocol: UDP
    lb_algo: rr
    real_server: {10.88.1.1 5353: {}}
""")
    desired = table_from(conf.virtual_servers)
    state = tmp_path / "owned.json"
    assert Reconciler(kernel, state).apply(desired).ok
    # One datagram from the client: IPVS schedules it (a connection entry).
    def conns() -> int:
        line = next(x for x in ipvsadm("-Ln", "--stats").splitlines() if "10.88.0.1" in x)
        return int(line.split()[2])

    sock = pr_netns.create_socket(client, socket.AF_INET, socket.SOCK_DGRAM, flags=0)
    with sock:
        for _ in range(5):  # the first may wait on ARP; bounded
            sock.sendto(b"ping", ("10.88.0.1", 5353))
            time.sleep(0.5)
            if conns():
                break
    seen = conns()
    assert seen >= 1, subprocess.run(["ip", "-n", client, "-s", "link"], capture_output=True,
                                     text=True).stdout + ipvsadm("-Lnc")
    assert "10.88.1.1:5353" in ipvsadm("-Lnc")
    # The daemon restarts: new socket, new reconciler, same ownership file.
    with IpvsKernel(netns=ns) as again:
        rec = Reconciler(again, state)
        assert rec.apply(desired).ops == ()
        assert conns() == seen  # a delete + re-add would have reset the counters
        assert "10.88.1.1:5353" in ipvsadm("-Lnc")
        # Ownership survived the restart: dropping the service from the config deletes it.
        assert [str(op) for op in rec.apply(Table()).ops] == ["-D -u 10.88.0.1:5353"]
    assert "10.88.0.1" not in ipvsadm("-Ln")


YAML = """\
virtual_server:
  10.60.0.1 80:
    protocol: TCP
    lb_algo: sh
    sh-port: true
    lb_kind: DR
    persistence_timeout: 120
    persistence_granularity: 255.255.255.0
    real_server:
      10.60.1.1 80: {weight: 3}
      10.60.1.2 80: {weight: 1, uthreshold: 50, lthreshold: 5}
  10.60.0.2 53:
    protocol: UDP
    lvs_sched: rr
    ops: true
    real_server:
      10.60.2.1 5353: {lvs_method: NAT}
  fd00:60::1 443:
    protocol: SCTP
    lvs_sched: wrr
    persistence_timeout: 30
    persistence_granularity: 64
    real_server:
      fd00:60::10 443: {lvs_method: TUN type gue port 6080}
  fwmark 61:
    lb_algo: wlc
    lb_kind: DR
    real_server:
      10.60.3.1 80: {}
  fwmark 62:
    ip_family: inet6
    lb_algo: mh
    mh-fallback: true
"""


def test_cli_list_layouts_and_apply_as_a_user_runs_it(ns: str, ipvsadm: Adm, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    conf = tmp_path / "services.yaml"
    conf.write_text(YAML)
    state = str(tmp_path / "owned.json")
    assert cli.main(["--netns", ns, "apply", "--dry-run", str(conf)]) == 0
    plan = capsys.readouterr().out
    assert "-A -t 10.60.0.1:80 -s sh -b flag-2 -p 120 -M 255.255.255.0" in plan
    assert "plan: 10 operations" in plan
    assert "10.60" not in ipvsadm("-Ln")  # a dry run changes nothing
    # As a user runs it: the console entry point, in a separate process.
    proc = subprocess.run([sys.executable, "-m", "ipvsctl", "--netns", ns, "apply", str(conf),
                           "--state", state], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "applied: 10 of 10 operations" in proc.stdout
    for args in ([], ["--stats"], ["--rate"]):
        assert cli.main(["--netns", ns, "list", *args]) == 0
        assert capsys.readouterr().out == ipvsadm("-Ln", *args), args
    adm = ipvsadm("-Ln")
    assert "TCP  10.60.0.1:80 sh (sh-port) persistent 120 mask 255.255.255.0" in adm
    assert "FWM  62 IPv6 mh (mh-fallback)" in adm
    assert cli.main(["--netns", ns, "list", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data["services"]) == 5
    assert sum(len(s["destinations"]) for s in data["services"]) == 5
    # Applying the same file again from a new process: nothing to do.
    assert cli.main(["--netns", ns, "apply", str(conf), "--state", state]) == 0
    assert "applied: 0 of 0 operations" in capsys.readouterr().out

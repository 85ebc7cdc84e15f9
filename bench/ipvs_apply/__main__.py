"""IPVS apply benchmark: ipvsctl against `ipvsadm -R`, in one run, in a fresh namespace.

    python bench/ipvs_apply [--services 1000] [--dests 10] [--json FILE]
    netns_tests/vm/run.py --bench          # the same, inside the IPVS guest

1. cold apply of S services x D dests with ipvsctl's Reconciler (dump, diff, batched apply);
2. flush, then the same table through `ipvsadm -R` (the lines are our plan, rendered in
   ipvsadm's syntax), timed as a whole and net of one empty `ipvsadm -R` (process start);
3. one destination's weight changes in the large table: the incremental path (diff against
   the last applied table, one op) and the full resync path (dump, diff, one op).
Every phase is checked with `ipvsadm -Ln`. Targets: cold within 1.5x of ipvsadm -R (net),
one change under 5 ms (on a host; in the emulated guest expect ~9x).
Exit status: 0 targets met, 1 a phase failed, 2 a target was missed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from ipaddress import ip_address
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from ipvsctl.desired import table_from  # noqa: E402
from ipvsctl.diff import diff  # noqa: E402
from ipvsctl.kernel import IpvsKernel  # noqa: E402
from ipvsctl.model import RealServer, Table, VirtualServer  # noqa: E402
from ipvsctl.reconciler import Reconciler  # noqa: E402


def sh(*cmd: str, stdin: str | None = None) -> str:
    return subprocess.run(cmd, input=stdin, capture_output=True, text=True, check=True,
                          timeout=600).stdout


def big_table(services: int, dests: int) -> Table:
    vss = [VirtualServer(ip=ip_address(f"10.{100 + i // 250}.{i % 250}.1"), port=80,
                         protocol="TCP", lvs_sched="wlc",
                         real_server=tuple(RealServer(ip_address(f"10.{200 + j}.{i % 250}."
                                                                 f"{i // 250 + 1}"), 8080,
                                                      weight=1 + j) for j in range(dests)))
           for i in range(services)]
    return table_from(vss)


def count(ns: str) -> tuple[int, int]:
    lines = sh("ip", "netns", "exec", ns, "ipvsadm", "-Ln").splitlines()[3:]
    return (sum(1 for x in lines if not x.startswith("  ->")),
            sum(1 for x in lines if x.startswith("  ->")))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--services", type=int, default=1000)
    ap.add_argument("--dests", type=int, default=10)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    ns = f"ipvsbench{os.getpid()}"
    sh("modprobe", "-q", "ip_vs")
    sh("ip", "netns", "add", ns)
    try:
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        return run(ns, args)
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


def run(ns: str, args: argparse.Namespace) -> int:
    desired = big_table(args.services, args.dests)
    n_ops = len(desired.services) + desired.dest_count()
    want = (len(desired.services), desired.dest_count())
    res: dict[str, float | int] = {"services": want[0], "dests": want[1], "ops": n_ops}
    with IpvsKernel(netns=ns) as kernel:
        rec = Reconciler(kernel)
        t0 = time.perf_counter()
        report = rec.apply(desired)
        res["ipvsctl_cold_s"] = time.perf_counter() - t0
        assert report.ok and len(report.ops) == n_ops, report.errors[:3]
        assert count(ns) == want, count(ns)

        script = "".join(f"{op}\n" for op in diff(desired, Table()))
        sh("ip", "netns", "exec", ns, "ipvsadm", "-C")
        t0 = time.perf_counter()
        sh("ip", "netns", "exec", ns, "ipvsadm", "-R", stdin="")
        res["ipvsadm_empty_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        sh("ip", "netns", "exec", ns, "ipvsadm", "-R", stdin=script)
        res["ipvsadm_R_s"] = time.perf_counter() - t0
        assert count(ns) == want, count(ns)
        res["ipvsadm_R_net_s"] = res["ipvsadm_R_s"] - res["ipvsadm_empty_s"]

        # ipvsadm -R wrote the same table: adopting it is a dump and zero ops.
        t0 = time.perf_counter()
        assert rec.apply(desired).ops == ()
        res["resync_noop_s"] = time.perf_counter() - t0

        key = sorted(desired.services)[len(desired.services) // 2]
        dk, d = next(iter(desired.dests_of(key).items()))
        changed = Table(desired.services, {**desired.dests, key: {
            **desired.dests_of(key), dk: replace(d, weight=d.weight + 100)}})
        t0 = time.perf_counter()
        report = rec.update(changed)
        res["one_change_ms"] = (time.perf_counter() - t0) * 1000
        assert len(report.ops) == 1 and report.ok
        back = Table(desired.services, {**changed.dests, key: {
            **changed.dests_of(key), dk: d}})
        t0 = time.perf_counter()
        report = rec.apply(back)
        res["one_change_with_dump_ms"] = (time.perf_counter() - t0) * 1000
        assert len(report.ops) == 1 and report.ok
        line = f"-> {d.addr}:{d.port}"
        adm = sh("ip", "netns", "exec", ns, "ipvsadm", "-Ln")
        assert any(line in x and f" {d.weight} " in x for x in adm.splitlines())

    ratio = res["ipvsctl_cold_s"] / max(res["ipvsadm_R_net_s"], 1e-9)
    res["ratio_vs_ipvsadm_R_net"] = ratio
    print(f"ipvs_apply: {want[0]} services x {args.dests} dests = {n_ops} ops")
    print(f"  ipvsctl cold apply      {res['ipvsctl_cold_s']:8.3f} s")
    print(f"  ipvsadm -R              {res['ipvsadm_R_s']:8.3f} s "
          f"(net {res['ipvsadm_R_net_s']:.3f} s after {res['ipvsadm_empty_s']:.3f} s "
          "to start ipvsadm)")
    print(f"  ratio ipvsctl / ipvsadm -R (net)  {ratio:.2f}  (target <= 1.5)")
    print(f"  adopt existing table (dump + diff, 0 ops)  {res['resync_noop_s']:.3f} s")
    print(f"  one dest changed, incremental  {res['one_change_ms']:8.2f} ms (target < 5 ms "
          "on a host)")
    print(f"  one dest changed, with dump    {res['one_change_with_dump_ms']:8.2f} ms")
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))
    return 0 if ratio <= 1.5 else 2


if __name__ == "__main__":
    sys.exit(main())

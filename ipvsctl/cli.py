"""ipvsctl list [--stats|--rate] [--json] | ipvsctl apply FILE [--dry-run] [--resync S]

Exit status: 0 done, 1 the kernel refused something (or has no IPVS), 2 bad config/usage.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from ipvsctl.config import ConfigError, load
from ipvsctl.desired import table_from
from ipvsctl.diff import summary
from ipvsctl.kernel import IpvsError, IpvsKernel, IpvsUnavailable
from ipvsctl.listing import render, to_json
from ipvsctl.reconciler import Reconciler, default_state_path


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="ipvsctl", description="IPVS table manager")
    ap.add_argument("--netns", help="work in this named network namespace (as ip -n)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    ls = sub.add_parser("list", help="print the table as ipvsadm -Ln does")
    mode = ls.add_mutually_exclusive_group()
    mode.add_argument("--stats", action="store_true", help="counters (ipvsadm -Ln --stats)")
    mode.add_argument("--rate", action="store_true", help="rates (ipvsadm -Ln --rate)")
    ls.add_argument("--json", action="store_true", help="JSON instead of ipvsadm's layout")
    ap_apply = sub.add_parser("apply", help="make the kernel match a YAML file")
    ap_apply.add_argument("file", type=Path)
    ap_apply.add_argument("--dry-run", action="store_true", help="print the plan only")
    ap_apply.add_argument("--state", type=Path,
                          help="ownership file (default: /run/ipvsctl/owned-<netns>.json)")
    ap_apply.add_argument("--resync", type=float, metavar="S",
                          help="stay in the foreground and repair drift every S seconds")
    return ap


def _list(kernel: IpvsKernel, args: argparse.Namespace) -> int:
    table = kernel.dump()
    if args.json:
        sys.stdout.write(to_json(table))
    else:
        version, size = kernel.info()
        mode = "stats" if args.stats else "rate" if args.rate else ""
        sys.stdout.write(render(table, version, size, mode))
    return 0


def _apply(kernel: IpvsKernel, args: argparse.Namespace) -> int:
    try:
        loaded = load(args.file)
    except (ConfigError, OSError) as err:
        print(err, file=sys.stderr)
        return 2
    for warning in loaded.warnings:
        print(warning, file=sys.stderr)
    desired = table_from(loaded.virtual_servers)
    state = args.state or default_state_path(args.netns)
    rec = Reconciler(kernel, None if args.dry_run else state)
    if args.dry_run:
        ops = rec.plan(desired)
        for op in ops:
            print(op)
        print(f"plan: {len(ops)} operations {summary(ops)} (dry run, nothing applied)")
        return 0
    report = rec.apply(desired)
    for op in report.ops:
        print(op)
    print(f"applied: {len(report.ops) - len(report.errors)} of {len(report.ops)} operations "
          f"{summary(report.ops)}")
    for err in report.errors:
        print(f"ipvsctl: {err}", file=sys.stderr)
    if args.resync:
        asyncio.run(_resync_loop(rec, args.resync))
    return 0 if report.ok else 1


async def _resync_loop(rec: Reconciler, interval: float) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await rec.run(interval, stop)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="ipvsctl: %(message)s")
    try:
        with IpvsKernel(args.netns) as kernel:
            return _list(kernel, args) if args.cmd == "list" else _apply(kernel, args)
    except IpvsUnavailable as err:
        print(f"ipvsctl: {err}", file=sys.stderr)
        return 1
    except IpvsError as err:
        print(f"ipvsctl: {err}", file=sys.stderr)
        return 1

"""ipvsctl list [--stats|--rate] [--json] | apply FILE [--dry-run] [--resync S]
        | run FILE [--resync S] [--keep-on-exit] | rs-setup --vip VIP start|stop

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
from ipvsctl.kernel import IpvsError, IpvsKernel
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
    ap_run = sub.add_parser("run", help="the checker daemon: health checks drive the table")
    ap_run.add_argument("file", type=Path)
    ap_run.add_argument("--state", type=Path,
                        help="ownership file (default: /run/ipvsctl/owned-<netns>.json)")
    ap_run.add_argument("--status", type=Path,
                        help="status file (default: /run/ipvsctl/status-<netns>.json)")
    ap_run.add_argument("--resync", type=float, default=30.0, metavar="S",
                        help="repair drift every S seconds (0: never; default 30)")
    ap_run.add_argument("--keep-on-exit", action="store_true",
                        help="leave the services and fwmark rules in place on SIGTERM")
    rs = sub.add_parser("rs-setup", help="prepare an LVS-DR real server (dr_vip_conf.sh)")
    rs.add_argument("--vip", required=True, help="the virtual IP (IPv4)")
    rs.add_argument("--label", default="lo:1", help="the address label on lo (lo:1)")
    rs.add_argument("--state", type=Path,
                    help="state file (default: /run/ipvsctl/rs-setup-<netns>.json)")
    rs.add_argument("action", choices=("start", "stop"))
    return ap


def _run(kernel: IpvsKernel, args: argparse.Namespace) -> int:
    from ipvsctl.daemon import Daemon
    from ipvsctl.nft import NftMarks

    state = args.state or default_state_path(args.netns)
    status = args.status or state.with_name(state.name.replace("owned-", "status-"))
    daemon = Daemon(args.file, Reconciler(kernel, state), resync=args.resync,
                    keep_on_exit=args.keep_on_exit, status_path=status,
                    nft=NftMarks(args.netns))
    return asyncio.run(daemon.run())


def _rs_setup(args: argparse.Namespace) -> int:
    from ipvsctl import rs_setup

    if args.netns:  # sysctls and addresses are the namespace's: move into it first
        from pyroute2 import netns

        netns.setns(args.netns)
    try:
        if args.action == "start":
            done = rs_setup.start(args.vip, args.label, args.state)
        else:
            done = rs_setup.stop(args.vip, args.state)
    except (ValueError, OSError, rs_setup.RsSetupError) as err:
        print(f"ipvsctl: rs-setup {args.action}: {err}", file=sys.stderr)
        return 2 if isinstance(err, ValueError) else 1
    print(f"rs-setup {args.action} {args.vip}: " + ("; ".join(done) or "nothing to change"))
    return 0


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
    if args.cmd == "rs-setup":  # a real server needs no IPVS
        return _rs_setup(args)
    if args.cmd == "run":
        logging.getLogger().handlers[0].setFormatter(
            logging.Formatter("%(asctime)s ipvsctl: %(levelname)s %(message)s"))
    try:
        with IpvsKernel(args.netns) as kernel:
            if args.cmd == "run":
                return _run(kernel, args)
            return _list(kernel, args) if args.cmd == "list" else _apply(kernel, args)
    except IpvsError as err:  # IpvsUnavailable ("no IPVS") included
        print(f"ipvsctl: {err}", file=sys.stderr)
        return 1

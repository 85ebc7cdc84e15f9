"""Command line: `pyvrrp run CONFIG`, `pyvrrp lab`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from pyvrrp.config.diagnostics import ConfigError
from pyvrrp.config.loader import load_config


def _run(args: argparse.Namespace) -> int:
    try:
        config, warnings = load_config(args.config)
    except ConfigError as err:
        for d in err.diagnostics:
            print(d, file=sys.stderr)
        return 2
    for w in warnings:
        print(w, file=sys.stderr)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s.%(msecs)03d %(name)s: %(message)s", datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    from pyvrrp.daemon import StartupError, run

    try:
        return asyncio.run(run(config, lambda: load_config(args.config)))
    except StartupError as err:
        print(f"pyvrrp: {err}", file=sys.stderr)
        return 1
    except PermissionError as err:
        print(f"pyvrrp: {err} (raw sockets and netlink need root)", file=sys.stderr)
        return 1


def _lab(args: argparse.Namespace) -> int:
    from pyvrrp.lab.demo import main as lab_main

    return lab_main(args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pyvrrp", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="run the VRRP speaker in the foreground")
    p_run.add_argument("config", help="YAML config file")
    p_run.add_argument("--log-level", default="info",
                       choices=["debug", "info", "warning", "error"])
    p_run.set_defaults(func=_run)
    p_lab = sub.add_parser("lab", help="demonstrate the seed's setups in network namespaces")
    p_lab.add_argument("--setup", choices=["vrrp", "nginx"], help="run only this setup")
    p_lab.set_defaults(func=_lab)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())

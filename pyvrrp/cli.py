"""Command line: `pyvrrp run CONFIG`, `pyvrrp check CONFIG`, `pyvrrp convert CONFIG`,
`pyvrrp lab`. CONFIG is YAML or keepalived.conf, told apart by content."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path

from pyvrrp.config.diagnostics import ConfigError
from pyvrrp.config.loader import load_config
from pyvrrp.config.parser import Options


def _run(args: argparse.Namespace) -> int:
    options = _options(args)
    try:
        config, warnings = load_config(args.config, options)
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
    if config.virtual_servers and not args.vrrp_only:
        from pyvrrp.supervisor import Supervisor, render_checker_config

        if args.checker_only:
            # keepalived's -C: only the checker, which is ipvsctl's daemon.
            path = Path(tempfile.mkdtemp(prefix="pyvrrp-")) / "virtual_servers.yaml"
            render_checker_config(config, path)
            os.execv(sys.executable, [sys.executable, "-m", "ipvsctl", "run", str(path)])
        return Supervisor(args.config, config, args.log_level, options).run()
    if args.checker_only:
        print("pyvrrp: --checker-only: the config has no virtual_server", file=sys.stderr)
        return 1
    import asyncio  # here: the supervisor (above) never needs it, and start-up counts

    from pyvrrp.daemon import StartupError, run

    try:
        return asyncio.run(run(config, lambda: load_config(args.config, options)))
    except StartupError as err:
        print(f"pyvrrp: {err}", file=sys.stderr)
        return 1
    except PermissionError as err:
        print(f"pyvrrp: {err} (raw sockets and netlink need root)", file=sys.stderr)
        return 1


def _options(args: argparse.Namespace) -> Options:
    # keepalived reads bytes: a word in another encoding must come out as it went in
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="surrogateescape")
    return Options(root=args.root, config_id=args.config_id)


def _check(args: argparse.Namespace) -> int:
    from pyvrrp.config.check import check
    from pyvrrp.config.host import Host

    host = None if args.no_host else Host(args.root)
    result = check(args.config, _options(args), strict=args.strict, host=host)
    print(result.json() if args.json else result.text())
    return 0 if result.ok else 1


def _convert(args: argparse.Namespace) -> int:
    from pyvrrp.config.convert import convert

    try:
        text, diags = convert(args.config, args.to, _options(args))
    except ConfigError as err:
        for d in err.diagnostics:
            print(d, file=sys.stderr)
        return 2
    for d in diags:
        print(d, file=sys.stderr)
    if args.output:
        Path(args.output).write_bytes(text.encode("utf-8", "surrogateescape"))
    else:
        sys.stdout.write(text)
    return 0


def _config_options(p: argparse.ArgumentParser, root_help: str = "look up absolute include "
                    "and script paths under this directory (a copy of a server's files)"
                    ) -> None:
    p.add_argument("--root", type=Path, help=root_help)
    p.add_argument("--config-id", help="the id for keepalived's `@id` lines (default: the "
                   "short host name)")


def _lab(args: argparse.Namespace) -> int:
    from pyvrrp.lab.demo import main as lab_main

    return lab_main(args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pyvrrp", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="run the VRRP speaker in the foreground")
    p_run.add_argument("config", help="config file: YAML or keepalived.conf")
    p_run.add_argument("--log-level", default="info",
                       choices=["debug", "info", "warning", "error"])
    only = p_run.add_mutually_exclusive_group()
    only.add_argument("--vrrp-only", action="store_true",
                      help="run only the VRRP speaker (keepalived's -P)")
    only.add_argument("--checker-only", action="store_true",
                      help="run only the health checker and IPVS manager (keepalived's -C)")
    _config_options(p_run, "look up absolute include paths under this directory (a copy of "
                    "a server's files); scripts still run from the paths as written")
    p_run.set_defaults(func=_run)
    p_check = sub.add_parser("check", help="judge a config as `keepalived -t` does")
    p_check.add_argument("config", help="config file: YAML or keepalived.conf")
    p_check.add_argument("--strict", action="store_true", help="treat warnings as errors")
    p_check.add_argument("--json", action="store_true", help="print the result as JSON")
    p_check.add_argument("--no-host", action="store_true", help="skip the checks against "
                         "this host (interfaces, scripts, users)")
    _config_options(p_check)
    p_check.set_defaults(func=_check)
    p_conv = sub.add_parser("convert", help="convert between keepalived.conf and YAML")
    p_conv.add_argument("config", help="config file: YAML or keepalived.conf")
    p_conv.add_argument("--to", required=True, choices=["yaml", "keepalived"])
    p_conv.add_argument("-o", "--output", help="write here instead of to stdout")
    _config_options(p_conv)
    p_conv.set_defaults(func=_convert)
    p_lab = sub.add_parser("lab", help="demonstrate the seed's setups in network namespaces")
    p_lab.add_argument("--setup", choices=["vrrp", "nginx"], help="run only this setup")
    p_lab.set_defaults(func=_lab)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())

"""`pyvrrp check`: a config's verdict as `keepalived -t` gives it, with file:line:col.

Exit status: 0 when pyvrrp would run the config (warnings and notes allowed), 1 when it
would not (any error). `--strict` makes every warning an error. The host checks
(interfaces exist, scripts and the security check, users) look at this machine, as
keepalived -t does; `--root` moves absolute paths under another directory.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

from pyvrrp.config.diagnostics import ConfigError, Diagnostic
from pyvrrp.config.host import Host, insecure
from pyvrrp.config.loader import load_config, looks_like_keepalived
from pyvrrp.config.model import Config, Pos
from pyvrrp.config.parser import Options

SCRIPT_KEYWORDS = ("misc_path", "notify_up", "notify_down", "quorum_up", "quorum_down")


@dataclass
class CheckResult:
    path: str
    format: str
    diagnostics: list[Diagnostic]

    @property
    def ok(self) -> bool:
        return not any(d.severity == "error" for d in self.diagnostics)

    def count(self, severity: str) -> int:
        return sum(d.severity == severity for d in self.diagnostics)

    def text(self) -> str:
        lines = [str(d) for d in self.diagnostics]
        verdict = "would run" if self.ok else "would not run"
        lines.append(f"{self.path}: {verdict} ({self.count('error')} errors, "
                     f"{self.count('warning')} warnings, {self.count('note')} notes)")
        return "\n".join(lines)

    def json(self) -> str:
        return json.dumps({
            "file": self.path, "format": self.format, "runs": self.ok,
            "errors": self.count("error"), "warnings": self.count("warning"),
            "notes": self.count("note"),
            "diagnostics": [{"file": d.pos.file, "line": d.pos.line, "col": d.pos.col,
                             "severity": d.severity, "message": d.message}
                            for d in self.diagnostics]}, indent=2, ensure_ascii=False)


def check(path: str | Path, options: Options | None = None, strict: bool = False,
          host: Host | None = None) -> CheckResult:
    options = replace(options or Options(), host=host)
    fmt = "keepalived" if _is_keepalived(path) else "yaml"
    config: Config | None = None
    try:
        config, diags = load_config(path, options)
    except ConfigError as err:
        diags = err.diagnostics
    diags = list(diags)
    if config is not None and host is not None:
        diags += host_checks(config, host, interfaces=fmt == "yaml")
    if strict:
        diags = [Diagnostic(d.pos, "error", d.message) if d.severity == "warning" else d
                 for d in diags]
    return CheckResult(str(path), fmt, diags)


def _is_keepalived(path: str | Path) -> bool:
    try:
        return looks_like_keepalived(Path(path).read_bytes()[:65536].decode("utf-8", "replace"))
    except OSError:
        return False


def host_checks(config: Config, host: Host, interfaces: bool) -> list[Diagnostic]:
    """What keepalived -t finds on this host after reading the config."""
    out: list[Diagnostic] = []
    gd = config.global_defs
    if interfaces and not gd.dynamic_interfaces:
        for inst in config.vrrp_instances:
            names = [(inst.interface, inst.pos, "vrrp_instance " + inst.name)]
            names += [(t.name, t.pos, f"track_interface of {inst.name}")
                      for t in inst.track_interface]
            names += [(v.dev, inst.pos, f"virtual_ipaddress {v.address}")
                      for v in inst.virtual_ipaddress if v.dev]
            for i, (name, pos, what) in enumerate(names):
                why = host.interface(name)
                if why == "missing" or (why == "loopback" and i == 0):
                    problem = "is a loopback" if why == "loopback" else "does not exist"
                    out.append(Diagnostic(pos, "error", f"interface {name} for {what} {problem}"))
    scripts = _scripts(config)
    checkers = _check_scripts(config)
    found = [(pos, cmd) for pos, cmd in scripts if host.script(cmd) is not None]
    found_check = [(pos, cmd) for pos, cmd in checkers if host.script(cmd) is not None]
    missing: set[str] = {s.script.split()[0] for s in config.vrrp_scripts if s.script.split()}
    for pos, cmd in [*scripts, *checkers]:
        if host.script(cmd) is None and cmd.split()[0] not in missing:
            missing.add(cmd.split()[0])
            out.append(Diagnostic(pos, "note", f"script {cmd.split()[0]} is not found on this "
                                  "host; keepalived disables it"))
    if found and not gd.enable_script_security:
        out.append(Diagnostic(found[0][0], "warning", "SECURITY VIOLATION - scripts are being "
                              "executed but script_security not enabled."))
    if found_check and not gd.enable_script_security:
        out.append(Diagnostic(found_check[0][0], "warning", "SECURITY VIOLATION - check scripts "
                              "are being executed but script_security not enabled."))
    if config.vrrp_instances:
        for s in config.vrrp_scripts:
            path = host.script(s.script)
            if path is None:
                out.append(Diagnostic(s.pos, "warning", f"Disabling track script {s.name} since "
                                      "not found/accessible"))
            elif gd.enable_script_security and insecure(path):
                out.append(Diagnostic(s.pos, "warning", f"Disabling track script {s.name} due "
                                      "to insecure"))
    if gd.script_user is not None and not host.user(gd.script_user):
        out.append(Diagnostic(Pos(config.source, 1, 1), "warning", f"script_user "
                              f"{gd.script_user} does not exist on this host"))
    for s in config.vrrp_scripts:
        if s.user is not None and not host.user(s.user):
            out.append(Diagnostic(s.pos, "warning", f"unable to set uid/gid for script "
                                  f"{s.script}: user {s.user} does not exist - removing"))
    return out


def _scripts(config: Config) -> list[tuple[Pos, str]]:
    """The VRRP side's scripts: vrrp_script and notify."""
    out = [(s.pos, s.script) for s in config.vrrp_scripts]
    for owner in (*config.vrrp_instances, *config.vrrp_sync_groups):
        n = owner.notify
        out += [(owner.pos, c) for c in (n.master, n.backup, n.fault, n.stop, n.any,
                                         n.master_rx_lower_pri) if c]
    return out


def _check_scripts(config: Config) -> list[tuple[Pos, str]]:
    """The checker side's scripts: MISC_CHECK, notify_up/down, quorum_up/down."""
    out: list[tuple[Pos, str]] = []
    stack = list(config.unsupported)
    while stack:
        s = stack.pop()
        if s.keyword in SCRIPT_KEYWORDS and s.args and s.pos is not None:
            out.append((s.pos, s.args[0]))
        stack += list(s.block or ())
    return out

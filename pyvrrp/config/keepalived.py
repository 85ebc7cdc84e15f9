"""The keepalived.conf front end: statements (parser.py) -> the typed model (model.py).

keepalived 2.2.7's verdicts are the spec. Where it logs a config error and goes on, this
warns and does what keepalived does (the fallback value, the ignored line); where it stops,
this raises ConfigError. Keywords pyvrrp does not run are kept as RawStatements with a
"parsed, not supported" note, so `pyvrrp convert` loses nothing.

Order matters as it does in keepalived: a track_script must name a vrrp_script defined
above it, because keepalived looks scripts up while it reads the instance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from ipvsctl.model import VirtualServer
from pyvrrp.config.diagnostics import ConfigError, Diagnostic
from pyvrrp.config.host import Host
from pyvrrp.config.kvalues import (
    INT_MAX,
    UINT_MAX,
    read_bool,
    read_decimal,
    read_int,
    read_ip,
    read_uint,
)
from pyvrrp.config.lexer import Word, split_quoted_escaped
from pyvrrp.config.model import (
    Config,
    GlobalDefs,
    Pos,
    RawStatement,
    Track,
    TrackFile,
    TrackProcess,
    VrrpScript,
)
from pyvrrp.config.parser import Options, Stmt, parse
from pyvrrp.config.report import Report

# pyvrrp's own limits (the YAML front end's), where keepalived allows absurd values
LIMITS = {"garp_master_delay": 1000, "garp_master_repeat": 255, "garp_master_refresh": 86400,
          "garp_master_refresh_repeat": 255, "garp_lower_prio_repeat": 255,
          "smtp_connect_timeout": 3600, "interval": 86400, "timeout": 86400, "rise": 1000,
          "fall": 1000}


@dataclass
class Scope:
    """What has been read so far; keepalived resolves names against it as it reads."""

    report: Report
    gd: dict[str, Any] = field(default_factory=dict)
    scripts: dict[str, VrrpScript] = field(default_factory=dict)
    files: dict[str, TrackFile] = field(default_factory=dict)
    procs: dict[str, TrackProcess] = field(default_factory=dict)
    raw: list[RawStatement] = field(default_factory=list)
    host: Host | None = None
    vs_groups: dict[str, list[tuple[str, int | None]]] = field(default_factory=dict)

    def missing_interface(self, name: str, w: Word, what: str, vrrp: bool = False) -> bool:
        """keepalived -t refuses a config naming an interface this host lacks (unless
        dynamic_interfaces), and will not run VRRP (`vrrp`) on a loopback."""
        if self.host is None or self.gd.get("dynamic_interfaces"):
            return False
        why = self.host.interface(name)
        if why == "loopback" and not vrrp:
            return False
        if why == "missing":
            self.report.error(w.pos, f"interface {name} for {what} doesn't exist (keepalived: "
                              "'Non-existent interface specified in configuration')")
        elif why == "loopback":
            self.report.error(w.pos, f"cannot use a loopback interface ({name}) for {what}")
        return why is not None

    # -- small shared readers ------------------------------------------------------------

    def uint(self, stmt: Stmt, lo: int, hi: int, what: str, fallback: str = "ignoring"
             ) -> int | None:
        """The first argument as keepalived's read_unsigned(); None (and a warning) if bad."""
        w = stmt.args[0] if stmt.args else None
        if w is None:
            return None
        n = read_uint(w.text, lo, hi)
        if n.value is None:
            self.report.warning(w.pos, f"{what} {n.problem} - {fallback}")
            return None
        return int(n.value)

    def limit(self, w: Word, key: str, value: float) -> float:
        top = LIMITS.get(key)
        if top is not None and value > top:
            self.report.warning(w.pos, f"{key} {value:g} is above {top}, the most pyvrrp "
                                f"supports; using {top}")
            return top
        return value

    def flag(self, stmt: Stmt, what: str) -> bool | None:
        """An optional boolean argument that defaults to true."""
        if not stmt.args:
            return True
        value = read_bool(stmt.args[0].text)
        if value is None:
            self.report.warning(stmt.args[0].pos, f"invalid {what} '{stmt.args[0].text}' "
                                "specified - ignoring")
        return value

    def keep(self, stmt: Stmt, context: tuple[str, ...], note: bool = True) -> None:
        """Keep a statement pyvrrp does not run, and say so."""
        self.raw.append(raw_statement(stmt, context))
        if note:
            where = f" in {' '.join(context)}" if context else ""
            self.report.note(stmt.pos, f"'{stmt.name}'{where} is parsed and kept, but pyvrrp "
                             "does not run it")


def raw_statement(stmt: Stmt, context: tuple[str, ...] = ()) -> RawStatement:
    block: tuple[RawStatement, ...] | None = None
    if stmt.block is not None:
        block = tuple(raw_statement(s) for s in stmt.block)
    elif stmt.values is not None:
        block = tuple(RawStatement(seg.first.text, tuple(w.text for w in seg.words[1:]),
                                   pos=seg.first.pos) for seg in stmt.values)
    return RawStatement(stmt.name, tuple(w.text for w in stmt.args), block, context, stmt.pos)


def command(scope: Scope, stmt: Stmt) -> str | None:
    """A script line as keepalived re-reads it: quotes and escapes, the command is the
    first word after the keyword; `user [group]` may follow."""
    words = split_quoted_escaped(stmt.text)
    if words is None:
        scope.report.warning(stmt.pos, f"{stmt.name}: a quote is not closed - ignoring")
        return None
    if len(words) < 2 or not words[1]:
        scope.report.warning(stmt.pos, f"{stmt.name} has no command - ignoring")
        return None
    if len(words) > 2 and stmt.name != "script":
        scope.report.note(stmt.args[-1].pos, f"{stmt.name}: the user/group "
                          f"'{' '.join(words[2:])}' is parsed, but pyvrrp runs the script as "
                          "the default script user")
    return words[1]


def weight_of(scope: Scope, stmt: Stmt, bound: int, what: str) -> tuple[int, bool] | None:
    """`weight N [reverse]` inside vrrp_script / track_file / vrrp_track_process."""
    w = stmt.args[0]
    n = read_int(w.text, -bound, bound)
    if n.value is None:
        scope.report.warning(w.pos, f"{what} weight {n.problem} - ignoring")
        return None
    reverse = False
    if len(stmt.args) > 1:
        if stmt.args[1].text == "reverse":
            reverse = True
        else:
            scope.report.warning(stmt.args[1].pos, f"{what} unknown weight option "
                                 f"{stmt.args[1].text}")
    return int(n.value), reverse


# -- global_defs ------------------------------------------------------------------------------

_GD_FLAGS = {"vrrp_min_garp", "vrrp_lower_prio_no_advert", "vrrp_higher_prio_send_advert",
             "smtp_alert"}


def global_defs(scope: Scope, stmt: Stmt) -> None:
    gd, report = scope.gd, scope.report
    for s in stmt.block or []:
        key, a0 = s.name, s.args[0] if s.args else None
        if not s.kw.model:
            if key == "dynamic_interfaces":
                continue
            scope.keep(s, ("global_defs",))
            continue
        if key in ("router_id", "notification_email_from", "smtp_helo_name"):
            if a0 is None:
                if key != "smtp_helo_name":
                    report.warning(s.pos, f"{key} has no value - ignoring")
                continue
            gd[key] = a0.text
        elif key == "smtp_server":
            _smtp_server(scope, s)
        elif key == "smtp_connect_timeout" and a0 is not None:
            v = scope.uint(s, 0, UINT_MAX // 1_000_000, "smtp_connect_timeout")
            if v == 0:
                report.warning(a0.pos, "smtp_connect_timeout must be greater than 0, "
                               "setting to 1")
                v = 1
            if v is not None:
                gd[key] = float(scope.limit(a0, key, v))
        elif key == "notification_email":
            emails = [w.text for seg in s.values or [] for w in seg.words]
            if not emails:
                report.warning(s.pos, "empty notification_email block")
            gd[key] = tuple(gd.get(key, ())) + tuple(emails)
        elif key in _GD_FLAGS:
            value = scope.flag(s, key)
            if value is not None:
                gd[key] = value
        elif key == "vrrp_mcast_group4" and a0 is not None:
            ip = read_ip(a0.text)
            if ip is None:
                report.warning(a0.pos, f"can't parse vrrp_mcast_group4 [{a0.text}]. Skipping")
            elif not isinstance(ip, IPv4Address):
                report.warning(a0.pos, f"vrrp_mcast_group4 [{a0.text}] is not IPv4. Skipping")
            elif not ip.is_multicast:
                report.warning(a0.pos, f"vrrp_mcast_group4 [{a0.text}] is not multicast. "
                               "Skipping")
            else:
                gd[key] = ip
        elif key == "vrrp_version" and a0 is not None:
            n = read_int(a0.text, 2, 3)
            if n.value is None:
                report.warning(a0.pos, f"vrrp_version {n.problem}: it must be 2 or 3 - "
                               "ignoring")
            else:
                gd[key] = int(n.value)
        elif key.startswith("vrrp_garp_") and a0 is not None:
            garp_value(scope, s, key[len("vrrp_"):], gd, key)
        elif key in ("vrrp_skip_check_adv_addr", "vrrp_strict", "enable_script_security"):
            gd[key] = True
            if key == "vrrp_strict":
                report.note(s.pos, "vrrp_strict: keepalived's strict rules are applied to the "
                            "config; its firewall rules for non-accept mode are not set up")
        elif key == "script_user":
            if a0 is None:
                report.warning(s.pos, "no script username specified - ignoring")
                continue
            gd["script_user"] = a0.text
            gd["script_group"] = s.arg(1)
        elif key in ("notify_fifo", "vrrp_notify_fifo"):
            if a0 is None:
                report.warning(s.pos, f"no {key} name specified - ignoring")
            elif key in gd:
                report.warning(a0.pos, f"{key} already specified - ignoring {a0.text}")
            else:
                gd[key] = a0.text
                if len(s.args) > 1:
                    report.note(s.args[1].pos, f"{key}: the user/group is parsed, but pyvrrp "
                                "opens the FIFO as itself")
        elif key == "dynamic_interfaces":
            gd[key] = True
            if a0 is not None:
                if a0.text == "allow_if_changes":
                    scope.keep(s, ("global_defs",))
                else:
                    report.warning(a0.pos, f"unknown dynamic_interfaces option '{a0.text}'")


def _smtp_server(scope: Scope, s: Stmt) -> None:
    host, port = s.arg(0), s.arg(1) or "25"
    if host is None:
        return
    n = read_uint(port, 1, 65535)
    if n.value is None:
        scope.report.warning(s.args[-1].pos, f"invalid smtp server {host} {port}")
        return
    scope.gd["smtp_server"] = host
    scope.gd["smtp_port"] = int(n.value)


def garp_value(scope: Scope, s: Stmt, key: str, into: dict[str, Any], name: str) -> None:
    """garp_master_delay & co, global (vrrp_ prefix) or per instance; keepalived's ranges."""
    a0 = s.args[0]
    report = scope.report
    if key == "garp_lower_prio_repeat":
        n = read_uint(a0.text, 0, INT_MAX)
    elif key == "garp_master_delay":
        n = read_uint(a0.text, 0, UINT_MAX // 1_000_000)
    else:
        n = read_uint(a0.text, 0, UINT_MAX)
    if n.value is None:
        fallback = "using 0" if key == "garp_master_refresh" else "ignoring"
        report.warning(a0.pos, f"{name} {n.problem} - {fallback}")
        if key == "garp_master_refresh":
            into[name] = 0.0
        return
    value: float = int(n.value)
    if value == 0 and key in ("garp_master_repeat", "garp_master_refresh_repeat"):
        report.warning(a0.pos, f"{name} must be greater than 0, setting to 1")
        value = 1
    value = scope.limit(a0, key, value)
    into[name] = float(value) if key in ("garp_master_delay", "garp_master_refresh") else int(value)


def make_global_defs(gd: dict[str, Any]) -> GlobalDefs:
    return GlobalDefs(**gd)


# -- vrrp_script, track_file, vrrp_track_process -------------------------------------------------


def vrrp_script(scope: Scope, stmt: Stmt) -> None:
    name = stmt.arg(0)
    if name is None:
        return
    values: dict[str, Any] = {}
    report = scope.report
    for s in stmt.block or []:
        key, a0 = s.name, s.args[0] if s.args else None
        if key == "script":
            cmd = command(scope, s)
            if cmd is not None:
                values["script"] = cmd
        elif key in ("interval", "timeout") and a0 is not None:
            v = scope.uint(s, 0, UINT_MAX // 1_000_000, f"({name}): vrrp script {key}")
            if v == 0:
                report.warning(a0.pos, f"({name}): vrrp script {key} must be greater than 0, "
                               "setting to 1")
                v = 1
            if v is not None:
                values[key] = int(scope.limit(a0, key, v))
        elif key in ("rise", "fall") and a0 is not None:
            n = read_uint(a0.text, 1, INT_MAX)
            if n.value is None:
                report.warning(a0.pos, f"({name}): vrrp script {key} value {n.problem}, "
                               "defaulting to 1")
                values[key] = 1
            else:
                values[key] = int(scope.limit(a0, key, n.value))
        elif key == "weight" and a0 is not None:
            got = weight_of(scope, s, 253, f"vrrp_script {name}")
            if got is not None:
                values["weight"], values["weight_reverse"] = got
        elif key == "user" and a0 is not None:
            values["user"], values["group"] = a0.text, s.arg(1)
        elif key == "init_fail":
            values["init_fail"] = True
    if "script" not in values:
        report.warning(stmt.pos, f"no script set for vrrp_script {name} - removing")
        return
    if name in scope.scripts:
        report.warning(stmt.pos, f"vrrp_script {name} is defined twice; keepalived uses the "
                       "first one")
        return
    scope.scripts[name] = VrrpScript(name=name, pos=stmt.pos, **values)


def track_file(scope: Scope, stmt: Stmt) -> None:
    name = stmt.arg(0)
    if name is None:
        return
    if stmt.name == "vrrp_track_file":
        scope.report.note(stmt.pos, '"vrrp_track_file" is deprecated, please use "track_file"')
    values: dict[str, Any] = {}
    report = scope.report
    for s in stmt.block or []:
        a0 = s.args[0] if s.args else None
        if s.name == "file":
            if a0 is None:
                report.warning(s.pos, "track file file name missing")
            elif "file" in values:
                report.warning(a0.pos, f"file already set for track file {name} - ignoring "
                               f"{a0.text}")
            else:
                values["file"] = a0.text
        elif s.name == "weight":
            if a0 is None:
                report.warning(s.pos, f"no weight specified for track file {name} - ignoring")
            elif values.get("weight", 1) != 1:
                report.warning(a0.pos, f"weight already set for track file {name} - ignoring "
                               f"{a0.text}")
            else:
                got = weight_of(scope, s, 254, f"track_file {name}")
                values["weight"], values["reverse"] = got or (1, False)
        elif s.name == "init_file":
            values["init_file"], values["init_overwrite"] = 0, False
            for w in s.args:
                if w.text[:1].isdigit() or w.text[:1] == "-":
                    n = read_int(w.text, -(2**31), INT_MAX)
                    if n.value is None:
                        report.warning(w.pos, f"track file {name} init value {w.text} is "
                                       "invalid")
                    else:
                        values["init_file"] = int(n.value)
                        if not -254 <= n.value <= 254:
                            report.warning(w.pos, f"track file {name} init value {w.text} is "
                                           "outside sensible range [-254, 254]")
                elif w.text == "overwrite":
                    values["init_overwrite"] = True
                else:
                    report.warning(w.pos, f"unknown track file init option {w.text}")
    if "file" not in values:
        report.warning(stmt.pos, f"no file set for track_file {name} - ignoring")
        return
    scope.files.setdefault(name, TrackFile(name=name, pos=stmt.pos, **values))


def vrrp_track_process(scope: Scope, stmt: Stmt) -> None:
    name = stmt.arg(0)
    if name is None:
        return
    values: dict[str, Any] = {}
    report = scope.report
    for s in stmt.block or []:
        key, a0 = s.name, s.args[0] if s.args else None
        if key == "process" and a0 is not None:
            if "process" in values:
                report.warning(a0.pos, f"process already set for track process {name} - "
                               f"ignoring {a0.text}")
                continue
            values["process"] = a0.text
            if len(s.args) > 1:
                values["parameters"] = " ".join(w.text for w in s.args[1:])
                values["full_command"] = True
        elif key == "param_match":
            if a0 is None:
                values["full_command"] = True
            elif a0.text in ("initial", "partial"):
                values["param_match"], values["full_command"] = a0.text, True
            else:
                report.warning(a0.pos, f"invalid param_match type {a0.text} - ignoring")
        elif key == "weight":
            if a0 is None:
                report.warning(s.pos, f"no weight specified for track process {name} - "
                               "ignoring")
            elif "weight" in values:
                report.warning(a0.pos, f"weight already set for track process {name} - "
                               f"ignoring {a0.text}")
            else:
                got = weight_of(scope, s, 254, f"vrrp_track_process {name}")
                if got is not None:
                    values["weight"], values["weight_reverse"] = got
        elif key == "quorum" and a0 is not None:
            n = read_uint(a0.text, 1, 65535)
            if n.value is None:
                report.warning(a0.pos, f"quorum for vrrp_track_process {name} {n.problem} - "
                               "ignoring")
            elif values.get("quorum_max") is not None and n.value > values["quorum_max"]:
                report.warning(a0.pos, "quorum is greater than quorum_max - ignoring")
            else:
                values["quorum"] = int(n.value)
        elif key == "quorum_max" and a0 is not None:
            n = read_uint(a0.text, 0, 65535)
            if n.value is None:
                report.warning(a0.pos, f"quorum_max for vrrp_track_process {name} "
                               f"{n.problem} - ignoring")
            elif (n.value or values.get("quorum", 1) > 1) and n.value < values.get("quorum", 1):
                report.warning(a0.pos, "quorum_max is less than quorum - ignoring")
            else:
                values["quorum_max"] = int(n.value)
        elif key in ("delay", "terminate_delay", "fork_delay") and a0 is not None:
            d = read_decimal(a0.text, 0.000001, 3600)
            if d.value is None:
                report.warning(a0.pos, f"{key} for vrrp_track_process {name} {d.problem} - "
                               "ignoring")
            else:
                values["delay"] = max(values.get("delay", 0.0), d.value)
        elif key == "full_command":
            values["full_command"] = True
    if "process" not in values:
        report.warning(stmt.pos, f"track process '{name}' process name not specified")
        return
    if values.get("quorum_max") == 0:
        report.note(stmt.pos, f"vrrp_track_process {name}: quorum_max 0 (no process may run) "
                    "is parsed, not supported")
        values.pop("quorum_max")
    scope.procs.setdefault(name, TrackProcess(name=name, pos=stmt.pos, **values))


# -- tracking lists (instances and sync groups) ---------------------------------------------------

_TRACK = {"track_interface": ("interface", "track_interface", 253),
          "track_script": ("script", "track script", 253),
          "track_file": ("file", "track file", 254),
          "track_process": ("process", "track process", 254)}


def track_list(scope: Scope, owner: str, stmt: Stmt) -> tuple[Track, ...]:
    """An instance's (or sync group's) track_* block, resolved as keepalived resolves it."""
    kind, what, bound = _TRACK[stmt.name]
    known: dict[str, Any] | None = {"script": scope.scripts, "file": scope.files,
                                    "process": scope.procs}.get(kind)
    report = scope.report
    out: list[Track] = []
    for seg in stmt.values or []:
        first, rest = seg.first, seg.words[1:]
        if kind == "interface" and scope.missing_interface(first.text, first,
                                                           f"track_interface of {owner}"):
            continue
        if known is not None and first.text not in known:
            report.warning(first.pos, f"({owner}) {what} {first.text} not found, ignoring...")
            continue
        if any(t.name == first.text for t in out):
            report.warning(first.pos, f"({owner}) duplicate {stmt.name} {first.text} - "
                           "ignoring")
            continue
        weight: int | None = None
        reverse = False
        if rest:
            if rest[0].text != "weight":
                report.warning(rest[0].pos, f"({owner}) unknown {what} option {rest[0].text} "
                               "- ignoring")
                continue
            if len(rest) == 1:
                report.warning(rest[0].pos, f"({owner}) weight without value specified for "
                               f"{what} {first.text} - ignoring")
                continue
            n = read_int(rest[1].text, -254, 254)
            if n.value is None:
                report.warning(rest[1].pos, f"({owner}) {what} {first.text}: weight "
                               f"{n.problem}; it must be in [-{bound}..{bound}] - ignoring it")
                weight = 0 if kind == "interface" else None
            elif abs(n.value) == 254 and bound == 253:
                report.warning(rest[1].pos, f"({owner}) weight for {first.text} cannot be "
                               "+/-254. Setting to +/-253")
                weight = 253 if n.value > 0 else -253
            else:
                weight = int(n.value)
            if len(rest) > 2:
                opt = rest[2].text
                if opt == "reverse" or (opt == "noreverse" and kind in ("script", "file")):
                    reverse = opt == "reverse"
                else:
                    report.warning(rest[2].pos, f"({owner}) unknown {what} {first.text} "
                                   f"weight option {opt} - ignoring")
                    if kind == "file":
                        continue
        out.append(Track(first.text, first.pos, weight, reverse))
    return tuple(out)


def default_weight(scope: Scope, kind: str, t: Track) -> int:
    """The weight keepalived uses for a track entry: its own, else the object's."""
    if t.weight is not None:
        return t.weight
    obj = {"track_script": scope.scripts, "track_file": scope.files,
           "track_process": scope.procs}.get(kind, {}).get(t.name)
    return int(getattr(obj, "weight", 0) or 0)


# -- the whole file ----------------------------------------------------------------------------


def lower(stmts: list[Stmt], source: str, report: Report, host: Host | None = None
          ) -> Config:
    """Statements -> Config; diagnostics go to `report`."""
    from pyvrrp.config.kchecker import group_entries, virtual_server, virtual_server_group
    from pyvrrp.config.kinstance import Instances

    scope = Scope(report, host=host)
    # keepalived links `virtual_server group NAME` to its group after reading everything
    scope.vs_groups = {s.args[0].text: group_entries(s) for s in stmts
                       if s.name == "virtual_server_group" and s.args}
    for stmt in stmts:
        if stmt.name == "global_defs":
            global_defs(scope, stmt)
    gd = make_global_defs(scope.gd)
    instances = Instances(scope, gd)
    servers: list[VirtualServer] = []
    for stmt in stmts:
        name = stmt.name
        if name == "global_defs":
            continue
        if name == "vrrp_instance":
            instances.read(stmt)
        elif name == "vrrp_sync_group":
            instances.read_group(stmt)
        elif name == "vrrp_script":
            vrrp_script(scope, stmt)
        elif name in ("track_file", "vrrp_track_file"):
            track_file(scope, stmt)
        elif name == "vrrp_track_process":
            vrrp_track_process(scope, stmt)
        elif name == "virtual_server":
            vs = virtual_server(scope, stmt)
            if vs is not None:
                servers.append(vs)
        elif name == "virtual_server_group":
            virtual_server_group(scope, stmt)
        else:
            scope.keep(stmt, ())
    done, groups = instances.complete()
    return Config(source=source, global_defs=gd, vrrp_instances=tuple(done),
                  vrrp_scripts=tuple(scope.scripts.values()),
                  track_files=tuple(scope.files.values()),
                  track_processes=tuple(scope.procs.values()),
                  vrrp_sync_groups=tuple(groups), unsupported=tuple(scope.raw),
                  virtual_servers=tuple(servers))


def load_keepalived(path: str | Path, text: str | None = None,
                    options: Options | None = None) -> tuple[Config, list[Diagnostic]]:
    """Load a keepalived.conf (and its includes); raise ConfigError when it cannot run."""
    report = Report()
    options = options or Options()
    parsed = parse(path, report, options, text)
    config = lower(parsed.statements, str(path), report, options.host)
    diags = report.finish()
    if not config.vrrp_instances and not report.has_errors():
        report.add(Pos(str(path), 1, 1), "note", "no vrrp_instance: pyvrrp has nothing to run",
                   absorb=False)
        diags = report.finish()
    if any(d.severity == "error" for d in diags):
        raise ConfigError(diags)
    return config, diags



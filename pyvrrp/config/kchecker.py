"""virtual_server, virtual_server_group, real_server and checkers from keepalived.conf.

The IPVS side of a virtual_server (address or fwmark, scheduler, method, persistence, real
servers with weights and thresholds) and its health side (HTTP_GET, SSL_GET, TCP_CHECK and
MISC_CHECK blocks, the check timers, sorry server, quorum, hysteresis, alpha/omega,
inhibit_on_failure, notify and quorum scripts) lower into ipvsctl's model (ipvsctl/model.py,
ipvsctl/health/config.py). What ipvsctl cannot run (DNS_CHECK, SMTP_CHECK, UDP_CHECK,
PING_CHECK, FILE_CHECK, BFD_CHECK, a checker with a keyword ipvsctl lacks such as `regex` or
`bind_if`, ha_suspend, smtp_alert...) is kept as RawStatements in the context of its
virtual_server / real_server and noted as "parsed, not supported". A `virtual_server group
NAME` and `virtual_server_group` are kept whole.

Everything is judged as keepalived 2.2.7 judges it: its handlers in check_parser.c and the
checks of validate_check_config() in check_data.c, with their warnings and fallbacks (no
protocol: UDP; no scheduler: wlc; no method: NAT; a fwmark real server's port is cleared...).
keepalived prints those last ones without a line; here they point at the line concerned.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address
from typing import Any

from ipvsctl.checks import health_of
from ipvsctl.health.config import (
    Checker,
    HealthConfigError,
    HttpGet,
    MiscCheck,
    SslGet,
    TcpCheck,
    Url,
    status_codes,
)
from ipvsctl.model import RealServer, SorryServer, VirtualServer
from pyvrrp.config.keepalived import Scope, command, raw_statement
from pyvrrp.config.kvalues import (
    INT_MAX,
    UINT_MAX,
    read_bool,
    read_decimal,
    read_ip,
    read_uint,
    seconds,
)
from pyvrrp.config.lexer import Word, split_quoted_escaped
from pyvrrp.config.model import Pos, RawStatement
from pyvrrp.config.parser import Stmt

SCHEDULERS = ("rr", "wrr", "lc", "wlc", "lblc", "sh", "mh", "dh", "fo", "ovf", "lblcr", "sed",
              "nq", "twos")
METHODS = ("NAT", "DR", "TUN")
PROTOCOLS = ("TCP", "UDP", "SCTP")
TIMERS = ("delay_loop", "delay_before_retry", "warmup", "connect_timeout")
SCHED_FLAGS = ("flag-1", "flag-2", "flag-3", "sh-port", "sh-fallback", "mh-port",
               "mh-fallback")
VS_MODEL = {"ip_family", "lb_algo", "lvs_sched", "lb_kind", "lvs_method", "persistence_timeout",
            "persistence_granularity", "persistence_engine", "protocol", "ops", "weight",
            "real_server", *SCHED_FLAGS}
RS_MODEL = {"weight", "lvs_method", "uthreshold", "lthreshold"}
Address = IPv4Address | IPv6Address


@dataclass
class _Server:
    pos: Pos
    addr: Address
    port: int | None
    method: str | None = None
    weight: int | None = None
    values: dict[str, Any] = field(default_factory=dict)
    used: set[int] = field(default_factory=set)  # id() of the statements lowered
    checks: list[tuple[Stmt, Checker]] = field(default_factory=list)


@dataclass
class _VS:
    pos: Pos
    label: str
    fwmark: bool
    port: int
    group: str | None = None
    protocol: Word | None = None
    scheduler: bool = False
    method: str | None = None
    tun: dict[str, Any] = field(default_factory=dict)
    persistent: bool = False
    ops: Word | None = None
    quorum: int = 1
    hysteresis: int = 0
    weight: int = 1
    ha_suspend: Word | None = None
    sorry: _Server | None = None
    reals: list[_Server] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)
    used: set[int] = field(default_factory=set)  # id() of the statements lowered


def _addr_port(scope: Scope, stmt: Stmt, what: str) -> tuple[Address, int | None] | None:
    ip, port_text = stmt.arg(0), stmt.arg(1)
    addr = read_ip(ip or "")
    port: int | None = None
    if port_text is not None:
        n = read_uint(port_text, 0, 65535)
        port = int(n.value) if n.value is not None else -1
    if addr is None or (port is not None and port < 0):
        shown = f"{ip}/{port_text}" if port_text is not None else f"{ip}"
        scope.report.warning(stmt.pos, f"invalid {what} IP address/port {shown} - skipping")
        return None
    return addr, port


def group_entries(stmt: Stmt) -> list[tuple[str, int | None]]:
    """A virtual_server_group's entries: ("fwmark", None) or (address, port or None)."""
    out: list[tuple[str, int | None]] = []
    for seg in stmt.values or []:
        words = [w.text for w in seg.words]
        if words[0] == "fwmark":
            out.append(("fwmark", None))
        else:
            port = read_uint(words[1], 0, 65535).value if len(words) > 1 else None
            out.append((words[0], int(port) if port is not None else None))
    return out


def virtual_server_group(scope: Scope, stmt: Stmt) -> None:
    name = stmt.arg(0)
    scope.keep(stmt, ())
    entries = 0
    for seg in stmt.values or []:
        first = seg.first
        if first.text == "fwmark":
            n = read_uint(seg.words[1].text, 0, UINT_MAX) if len(seg.words) > 1 else None
            if n is None or n.value is None:
                scope.report.warning(first.pos, f"({name}): fwmark must be in [0, {UINT_MAX}] - "
                                     "ignoring")
                continue
        else:
            base = first.text.split("/")[0].split("-")[0]
            if read_ip(base) is None:
                scope.report.warning(first.pos, f"invalid virtual server group IP address "
                                     f"{first.text} - skipping")
                continue
        entries += 1
    if not entries:
        scope.report.warning(stmt.pos, f"virtual server group {name} has no entries - removing")


def virtual_server(scope: Scope, stmt: Stmt) -> VirtualServer | None:
    """Judge the block; return its IPVS side, or None when it is kept whole (raw)."""
    vs = _header(scope, stmt)
    if vs is not None:
        for s in stmt.block or []:
            _vs_keyword(scope, vs, s)
        if not _validate(scope, vs):
            vs = None
    if vs is None or vs.group is not None:
        scope.keep(stmt, ())
        return None
    return _lower(scope, stmt, vs)


def _header(scope: Scope, stmt: Stmt) -> _VS | None:
    a0, a1 = stmt.arg(0), stmt.arg(1)
    if a0 == "group":
        return _VS(stmt.pos, f"group {a1}", False, 0, group=a1)
    if a0 == "fwmark":
        n = read_uint(a1 or "", 0, UINT_MAX)
        if n.value is None:
            scope.report.warning(stmt.pos, f"virtual server fwmark '{a1}' must be in [0, "
                                 f"{UINT_MAX}] - ignoring")
            return None
        return _VS(stmt.pos, f"FWM {a1}", True, 0, values={"fwmark": int(n.value)})
    got = _addr_port(scope, stmt, "virtual server")
    if got is None:
        return None
    addr, port = got
    return _VS(stmt.pos, f"[{addr}]:{port or 0}", False, port or 0,
               values={"ip": addr, "port": port or 0})


def _timer(scope: Scope, s: Stmt, what: str) -> float | None:
    d = read_decimal(s.args[0].text, 0, UINT_MAX / 1e6)
    if d.value is None:
        scope.report.warning(s.args[0].pos, f"{what} {s.name} {d.problem} - ignoring")
        return None
    return float(d.value)


def _flag(s: Stmt) -> bool | None:
    """A bare keyword (`alpha`) is true; else keepalived's true/false word."""
    return True if not s.args else read_bool(s.args[0].text)


def _lower_common(scope: Scope, into: _VS | _Server, s: Stmt, what: str) -> bool:
    """The check keywords a virtual_server and a real_server share, into the model."""
    a0 = s.args[0] if s.args else None
    value: Any = None
    if s.name in TIMERS and a0 is not None:
        value = _timer(scope, s, what)
        if value is not None and s.name in ("delay_loop", "connect_timeout") and not value:
            value = None  # ipvsctl needs them positive: kept raw
    elif s.name == "retry" and a0 is not None:
        n = read_uint(a0.text, 0, INT_MAX)
        if read_uint(a0.text, 0, UINT_MAX).value is None:
            scope.report.warning(a0.pos, f"retry value invalid - {a0.text}")
        value = None if n.value is None else int(n.value)
    elif s.name in ("alpha", "inhibit_on_failure"):
        value = _flag(s)
        if value is None and a0 is not None:
            scope.report.warning(a0.pos, f"invalid {s.name} parameter {a0.text}")
    elif s.name == "virtualhost" and a0 is not None:
        value = a0.text
    elif s.name in ("notify_up", "notify_down", "quorum_up", "quorum_down") and a0 is not None:
        value = command(scope, s)
    else:
        return False
    if value is not None:
        into.values[s.name] = value
        into.used.add(id(s))
    return True


def _vs_keyword(scope: Scope, vs: _VS, s: Stmt) -> None:
    r, a0 = scope.report, s.args[0] if s.args else None
    if s.name == "omega" or s.name == "sorry_server_inhibit" and vs.sorry is not None:
        value = _flag(s)
        if value is None:
            r.warning(s.args[0].pos, f"invalid {s.name} parameter {s.args[0].text}")
        else:
            vs.values[s.name] = value
            vs.used.add(id(s))
    elif s.name not in ("real_server",) and _lower_common(scope, vs, s, "virtual server"):
        if s.name in ("notify_up", "notify_down"):
            vs.values.pop(s.name, None)
            vs.used.discard(id(s))
    elif s.name in ("lb_algo", "lvs_sched") and a0 is not None:
        if a0.text not in SCHEDULERS:
            r.warning(a0.pos, f"invalid lvs_scheduler '{a0.text}' - ignoring")
        else:
            vs.scheduler = True
            vs.values["lvs_sched"] = a0.text
    elif s.name in ("lb_kind", "lvs_method") and a0 is not None:
        got = _method(scope, s, "virtual")
        if got is not None:
            vs.method, vs.tun = got
            vs.values["lvs_method"] = vs.method
    elif s.name == "protocol" and a0 is not None:
        if a0.text not in PROTOCOLS:
            r.warning(a0.pos, f"unknown protocol {a0.text} - ignoring")
        else:
            vs.protocol = a0
            if not vs.fwmark:
                vs.values["protocol"] = a0.text
    elif s.name == "persistence_timeout":
        n = read_uint(a0.text, 1, UINT_MAX) if a0 is not None else None
        if n is not None and n.value is None:
            r.warning(a0.pos if a0 else s.pos, "persistence_timeout invalid")
        else:
            vs.persistent = True
            vs.values["persistence_timeout"] = int(n.value) if n else 360
    elif s.name in ("persistence_granularity", "persistence_engine") and a0 is not None:
        vs.persistent = vs.persistent or s.name == "persistence_granularity"
        vs.values[s.name] = a0.text
    elif s.name == "ip_family" and a0 is not None:
        if a0.text not in ("inet", "inet6"):
            r.warning(a0.pos, f"unknown address family {a0.text}")
        else:
            vs.values["ip_family"] = a0.text
    elif s.name in SCHED_FLAGS:
        vs.values["sched_flags"] = (*vs.values.get("sched_flags", ()), s.name)
    elif s.name == "ops":
        vs.ops = s.keyword
        vs.values["ops"] = True
    elif s.name == "ha_suspend":
        vs.ha_suspend = s.keyword
    elif s.name == "quorum" and a0 is not None:
        n = read_uint(a0.text, 1, UINT_MAX)
        if n.value is None:
            r.warning(a0.pos, f"quorum {a0.text} must be in [1, {UINT_MAX}]. Setting to 1.")
        vs.quorum = int(n.value) if n.value is not None else 1
        vs.used.add(id(s))
    elif s.name == "hysteresis" and a0 is not None:
        n = read_uint(a0.text, 0, UINT_MAX)
        if n.value is None:
            r.warning(a0.pos, f"hysteresis {a0.text} must be in [0, {UINT_MAX}] - ignoring")
        else:
            vs.hysteresis = int(n.value)
            vs.used.add(id(s))
    elif s.name == "weight" and a0 is not None:
        n = read_uint(a0.text, 1, INT_MAX)
        if n.value is None:
            r.warning(a0.pos, f"virtual server weight {a0.text} is outside range 1-{INT_MAX}")
        else:
            vs.weight = vs.values["weight"] = int(n.value)
    elif s.name == "sorry_server" and a0 is not None:
        got = _addr_port(scope, s, "sorry server")
        if got is not None:
            vs.sorry = _Server(s.pos, got[0], got[1])
            vs.values["sorry_server"] = SorryServer(got[0], got[1])
            vs.used.add(id(s))
    elif s.name == "sorry_server_inhibit" and vs.sorry is None:
        r.warning(s.pos, "ignoring sorry_server_inhibit used before or without sorry_server")
    elif s.name == "sorry_server_lvs_method":
        if vs.sorry is None:
            r.warning(s.pos, "sorry_server forwarding used without sorry_server")
        elif a0 is not None:
            got = _method(scope, s, "sorry")
            vs.sorry.method = got[0] if got else None
            if got is not None and not got[1]:
                vs.values["sorry_server_lvs_method"] = got[0]
                vs.used.add(id(s))
    elif s.name == "smtp_alert" and a0 is not None:
        if read_bool(a0.text) is None:
            r.warning(a0.pos, f"invalid {s.name} parameter {a0.text}")
    elif s.name == "real_server":
        _real_server(scope, vs, s)


def _method(scope: Scope, s: Stmt, kind: str) -> tuple[str, dict[str, Any]] | None:
    """`NAT`, `DR`, or `TUN [type ipip|gue|gre] [port N] [nocsum|csum|remcsum]`."""
    method = s.args[0].text
    if method not in METHODS:
        scope.report.warning(s.args[0].pos, f"unknown [{method}] routing method for {kind} "
                             "server")
        return None
    tun: dict[str, Any] = {}
    rest = list(s.args[1:]) if method == "TUN" else []
    while rest:
        w = rest.pop(0)
        if w.text == "type" and rest and rest[0].text in ("ipip", "gue", "gre"):
            tun["tun_type"] = rest.pop(0).text
        elif w.text == "port" and rest and read_uint(rest[0].text, 1, 65535).value:
            tun["tun_port"] = int(rest.pop(0).text)
        elif w.text in ("nocsum", "csum", "remcsum"):
            tun["tun_flags"] = w.text
        else:
            scope.report.warning(w.pos, f"invalid tunnel option {w.text} for {kind} server")
    if tun.get("tun_type") == "gue" and not tun.get("tun_port"):
        scope.report.warning(s.pos, "gue tunnels require port, otherwise cannot have port")
    return method, tun


def _real_server(scope: Scope, vs: _VS, stmt: Stmt) -> None:
    got = _addr_port(scope, stmt, "real server")
    if got is None:
        return
    rs = _Server(stmt.pos, got[0], got[1])
    r = scope.report
    for s in stmt.block or []:
        a0 = s.args[0] if s.args else None
        if s.name == "weight" and a0 is not None:
            n = read_uint(a0.text, 0, INT_MAX)
            if n.value is None:
                r.warning(a0.pos, f"real server weight {a0.text} is outside range 0-{INT_MAX}")
            else:
                rs.weight = rs.values["weight"] = int(n.value)
        elif s.name == "lvs_method" and a0 is not None:
            method = _method(scope, s, "real")
            if method is not None:
                rs.method = rs.values["lvs_method"] = method[0]
                rs.values.update(method[1])
        elif s.name in ("uthreshold", "lthreshold") and a0 is not None:
            n = read_uint(a0.text, 0, INT_MAX)
            if n.value is None:
                r.warning(a0.pos, f"invalid real_server {s.name} '{a0.text}' - ignoring")
            else:
                rs.values[s.name] = int(n.value)
        elif _lower_common(scope, rs, s, "real server"):
            if s.name in ("quorum_up", "quorum_down"):
                rs.values.pop(s.name, None)
                rs.used.discard(id(s))
        elif s.kw.sub is not None and s.block is not None:
            _checker(scope, s)
            checker = _build_checker(s)
            if checker is not None:
                rs.checks.append((s, checker))
    if any(o.addr == rs.addr and (o.port or vs.port) == (rs.port or vs.port)
           for o in vs.reals):
        r.warning(stmt.pos, f"VS {vs.label}: real server [{rs.addr}]:{rs.port or 0} is "
                  "duplicated - removing second rs")
        return
    vs.reals.append(rs)


def _checker(scope: Scope, stmt: Stmt) -> None:
    r = scope.report
    urls = 0
    for s in stmt.block or []:
        a0 = s.args[0] if s.args else None
        if s.name == "nb_get_retry":
            r.warning(s.pos, "nb_get_retry is deprecated - please use 'retry'")
            if a0 is not None and read_uint(a0.text, 0, UINT_MAX).value is None:
                r.warning(a0.pos, f"invalid nb_get_retry value '{a0.text}'")
        elif s.name in TIMERS and a0 is not None:
            _timer(scope, s, stmt.name)
        elif s.name in ("retry", "connect_port", "bind_port", "fwmark") and a0 is not None:
            hi = 65535 if s.name.endswith("port") else UINT_MAX
            if read_uint(a0.text, 0, hi).value is None:
                r.warning(a0.pos, f"invalid {s.name} value '{a0.text}'")
        elif s.name in ("connect_ip", "bindto") and a0 is not None:
            if read_ip(a0.text) is None:
                r.warning(a0.pos, f"invalid {s.name} address {a0.text} - ignoring")
        elif s.name == "url":
            urls += _url(scope, s)
        elif s.kw.sub is not None and s.block is not None:
            _checker(scope, s)
    if stmt.name in ("HTTP_GET", "SSL_GET") and not urls:
        r.error(stmt.pos, f"{stmt.name} has no url with a path; keepalived 2.2.7 says "
                "'checker has no urls specified - ignoring' and then crashes (SIGSEGV)")


CHECK_KINDS: dict[str, type[Checker]] = {"HTTP_GET": HttpGet, "SSL_GET": SslGet,
                                         "TCP_CHECK": TcpCheck, "MISC_CHECK": MiscCheck}


def _build_checker(stmt: Stmt) -> Checker | None:
    """The checker block as ipvsctl's model, or None when any of it has no place there
    (an unsupported kind or keyword, an invalid value): then it is kept raw as before."""
    cls = CHECK_KINDS.get(stmt.name)
    if cls is None:
        return None
    conn, http = cls is not MiscCheck, cls in (HttpGet, SslGet)
    values: dict[str, Any] = {}
    urls: list[Url] = []
    try:
        for s in stmt.block or []:
            value = _checker_value(s, cls, conn, http)
            if s.name == "url" and http:
                urls.append(value)
            elif s.name == "user":
                values["user"], values["group"] = value
            else:
                values["retry" if s.name == "nb_get_retry" else s.name] = value
        if http:
            values["urls"] = tuple(urls)
        checker = cls(**values)
    except (TypeError, ValueError, LookupError):
        return None
    if http and not urls or cls is MiscCheck and not values.get("misc_path"):
        return None
    return checker


def _checker_value(s: Stmt, cls: type[Checker], conn: bool, http: bool) -> Any:
    """One checker keyword's value; ValueError when the model cannot hold it."""
    words = [w.text for w in s.args]
    one = words[0] if len(words) == 1 else None
    name = s.name
    if name in ("retry", "nb_get_retry") and one is not None:
        return _uint(one, 0, INT_MAX)
    if name in ("delay_before_retry", "warmup") and one is not None:
        return _secs(one, zero=True)
    if name == "delay_loop" and one is not None:
        return _secs(one)
    if name in ("alpha", "fast_recovery", "enable_sni", "misc_dynamic") and len(words) <= 1:
        value = _flag(s)
        if value is None or name == "enable_sni" and cls is not SslGet:
            raise ValueError(name)
        return value
    if conn and one is not None:
        if name in ("connect_ip", "bindto") and read_ip(one) is not None:
            return str(read_ip(one))
        if name in ("connect_port", "bind_port"):
            return _uint(one, 1, 65535)
        if name == "connect_timeout":
            return _secs(one)
    if http and name in ("virtualhost", "http_protocol") and one is not None:
        return one
    if http and name == "url" and s.block is not None:
        return _build_url(s)
    if cls is MiscCheck:
        if name == "misc_path":
            got = split_quoted_escaped(s.text)
            if got is None or len(got) != 2 or not got[1].strip():
                raise ValueError(name)
            return got[1].strip()
        if name == "misc_timeout" and one is not None:
            return _secs(one)
        if name == "user" and 1 <= len(words) <= 2:
            return words[0], (words[1] if len(words) == 2 else None)
    raise ValueError(name)


def _build_url(stmt: Stmt) -> Url:
    values: dict[str, Any] = {}
    for s in stmt.block or []:
        words = [w.text for w in s.args]
        if s.name in ("path", "digest", "virtualhost") and len(words) == 1 \
                and s.name not in values:
            values[s.name] = words[0]
        elif s.name == "status_code" and words:
            values["status_code"] = values.get("status_code", ()) + status_codes(*words)
        else:
            raise ValueError(s.name)
    return Url(**values)


def _uint(text: str, lo: int, hi: int) -> int:
    n = read_uint(text, lo, hi)
    if n.value is None:
        raise ValueError(text)
    return int(n.value)


def _secs(text: str, zero: bool = False) -> float:
    d = read_decimal(text, 0, UINT_MAX / 1e6)
    if d.value is None or d.problem or (not zero and not d.value):
        raise ValueError(text)
    return float(seconds(float(d.value)))


def _url(scope: Scope, stmt: Stmt) -> int:
    r = scope.report
    has_path = False
    for s in stmt.block or []:
        if s.name == "path" and s.args:
            has_path = True
        elif s.name == "status_code":
            for w in s.args:
                lo, _, hi = w.text.partition("-")
                if any(read_uint(x, 100, 599).value is None for x in (lo, hi or lo)):
                    r.warning(w.pos, f"invalid HTTP_GET status code '{w.text}'")
        elif s.name == "digest" and s.args and len(s.args[0].text) != 32:
            r.warning(s.args[0].pos, f"digest '{s.args[0].text}' character length should be 32 "
                      f"rather than {len(s.args[0].text)}")
    if not has_path:
        r.warning(stmt.pos, "HTTP/SSL_GET checker url has no path - ignoring")
    return int(has_path)


def _validate(scope: Scope, vs: _VS) -> bool:
    """validate_check_config(), for one virtual server. False: keepalived drops it."""
    r = scope.report
    if not vs.reals:
        r.warning(vs.pos, f"virtual server {vs.label} has no real servers - ignoring")
        return False
    entries = scope.vs_groups.get(vs.group or "", [])
    if vs.group is not None and vs.group not in scope.vs_groups:
        r.note(vs.pos, f"virtual server group {vs.group} specified but not configured - "
               "keepalived ignores this virtual server")
        return True
    addresses = [e for e in entries if e[0] != "fwmark"]
    by_address = (not vs.fwmark and vs.group is None) or bool(addresses)
    if vs.ha_suspend is not None and vs.fwmark:
        r.warning(vs.ha_suspend.pos, f"virtual server {vs.label}: cannot use ha_suspend with "
                  "fwmarks - clearing ha_suspend")
    if by_address:
        if vs.protocol is None:
            r.warning(vs.pos, f"virtual server {vs.label}: no protocol set - defaulting to UDP")
            vs.values["protocol"] = "UDP"
        elif vs.ops is not None and vs.protocol.text != "UDP":
            r.warning(vs.ops.pos, f"virtual server {vs.label}: one packet scheduling requires "
                      "UDP - resetting")
            vs.values.pop("ops", None)
        if not vs.persistent and (not vs.port if vs.group is None
                                  else any(not port for _, port in addresses)):
            r.warning(vs.pos, f"virtual server {vs.label}: zero port only valid for persistent "
                      "services - setting")
    only_marks = vs.group is not None and entries and not addresses
    if vs.protocol is not None and (vs.fwmark or only_marks):
        r.warning(vs.protocol.pos, f"virtual server {vs.label}: protocol specified for fwmark "
                  "- protocol will be ignored")
    if not vs.scheduler:
        r.warning(vs.pos, f"virtual server {vs.label}: no scheduler set, setting default 'wlc'")
    servers = [*vs.reals, *([vs.sorry] if vs.sorry else [])]
    if vs.method is None and any(rs.method is None for rs in servers):
        r.warning(vs.pos, f"virtual server {vs.label}: no forwarding method set, setting "
                  "default NAT")
    weight_sum = sum(vs.weight if rs.weight is None else rs.weight for rs in vs.reals)
    if vs.quorum > weight_sum:
        r.warning(vs.pos, f"quorum {vs.quorum} for {vs.label} exceeds total weight of real "
                  f"servers {weight_sum}, reducing quorum to {weight_sum}")
        vs.quorum = weight_sum
    if vs.hysteresis and vs.hysteresis >= vs.quorum:
        r.warning(vs.pos, f"virtual server {vs.label}: hysteresis {vs.hysteresis} >= quorum "
                  f"{vs.quorum}; setting hysteresis to {vs.quorum - 1}")
        vs.hysteresis = max(vs.quorum - 1, 0)
    if vs.quorum != 1:
        vs.values["quorum"] = max(vs.quorum, 1)  # a total weight of 0: ipvsctl's floor
    if vs.hysteresis:
        vs.values["hysteresis"] = min(vs.hysteresis, max(vs.quorum - 1, 0))
    if vs.group is not None:
        _validate_group(scope, vs, servers)
        return True
    for rs in servers:
        if (rs.method or vs.method or "NAT") == "NAT" or not rs.port:
            continue
        what = "sorry server" if rs is vs.sorry else f"real server [{rs.addr}]:{rs.port}"
        if vs.fwmark:
            r.warning(rs.pos, f"fwmark virtual server {vs.label}, {what} has port specified - "
                      "clearing (keepalived's checkers still use it: keepalived issue #2368)")
        elif rs.port != vs.port:
            r.warning(rs.pos, f"virtual server {vs.label} and {what} ports don't match - "
                      "resetting")
    return True


def _validate_group(scope: Scope, vs: _VS, servers: list[_Server]) -> None:
    """The port checks of validate_check_config() for `virtual_server group NAME`."""
    entries = scope.vs_groups.get(vs.group or "", [])
    direct = [rs for rs in servers if (rs.method or vs.method or "NAT") != "NAT"]
    if any(kind == "fwmark" for kind, _ in entries):
        for rs in direct:
            if rs.port:
                what = ("sorry server" if rs is vs.sorry
                        else f"real server [{rs.addr}]:{rs.port}")
                scope.report.warning(rs.pos, f"fwmark virtual server [{vs.group}]:0, {what} "
                                     "has port specified - port will be ignored")
    for addr, port in entries:
        for rs in direct:
            if addr != "fwmark" and rs.port and port != rs.port:
                scope.report.warning(rs.pos, f"virtual server {vs.label}:[{addr}:{port or 0}] "
                                     f"and real server [{rs.addr}]:{rs.port} ports don't match")


def _lower(scope: Scope, stmt: Stmt, vs: _VS) -> VirtualServer:
    """The IPVS side and the health side into ipvsctl's model; every other statement raw,
    in its context."""
    head = vs_context(vs.values)
    kept: list[str] = []
    for s in stmt.block or []:
        if s.name not in VS_MODEL and id(s) not in vs.used:
            scope.raw.append(raw_statement(s, head))
            kept.append(s.name)
    reals = []
    by_pos = {rs.pos: rs for rs in vs.reals}
    bare = VirtualServer(**vs.values)
    for s in stmt.block or []:
        rs = by_pos.get(s.pos) if s.name == "real_server" else None
        if rs is None:
            continue
        if rs.method is None and vs.method == "TUN" and vs.tun:
            # keepalived: real servers take the VS's tunnel; ipvsctl keeps it per server
            rs.values.update(vs.tun, lvs_method="TUN")
        model = RealServer(ip=rs.addr, port=rs.port, **rs.values,
                           checkers=tuple(c for _, c in rs.checks))
        try:
            health_of(bare, model)
            lowered = {id(c) for c, _ in rs.checks}
        except HealthConfigError as err:
            scope.report.note(s.pos, f"{err}: its checkers are kept, not run")
            model = RealServer(ip=rs.addr, port=rs.port, **rs.values)
            lowered = set()
        reals.append(model)
        for c in s.block or []:
            if c.name not in RS_MODEL and id(c) not in rs.used and id(c) not in lowered:
                scope.raw.append(raw_statement(c, (*head, *rs_context(model))))
                kept.append(c.name)
    if kept:
        names = ", ".join(sorted(set(kept)))
        scope.report.note(stmt.pos, f"virtual_server {' '.join(head[1:])}: {names} parsed and "
                          "kept, not run (pyvrrp does not support them)")
    return VirtualServer(**vs.values, real_server=tuple(reals), where=str(stmt.pos))


def vs_context(values: dict[str, Any] | VirtualServer) -> tuple[str, ...]:
    """The words that name a virtual_server in a RawStatement's context."""
    get = values.get if isinstance(values, dict) else lambda k, d=None: getattr(values, k, d)
    if get("fwmark") is not None:
        return ("virtual_server", "fwmark", str(get("fwmark")))
    return ("virtual_server", str(get("ip")), str(get("port", 0)))


def rs_context(rs: RealServer) -> tuple[str, ...]:
    return ("real_server", str(rs.ip), *(() if rs.port is None else (str(rs.port),)))


__all__ = ["virtual_server", "virtual_server_group", "vs_context", "rs_context", "RawStatement"]

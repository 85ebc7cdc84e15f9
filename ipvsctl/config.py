"""The `virtual_server` part of the YAML config, under keepalived's keyword names.

    virtual_server:
      10.0.0.100 80:                 # virtual_server 10.0.0.100 80 { ... }
        lb_algo: rr                  # or lvs_sched
        lb_kind: DR                  # or lvs_method: NAT | DR | TUN [type gue port N] [csum]
        protocol: TCP
        persistence_timeout: 300
        real_server:
          192.168.1.10 80: {weight: 2}
      fwmark 5: {...}

Other top-level keys (global_defs, vrrp_instance, ...) belong to pyvrrp and are skipped, so
one file serves both. pyvrrp's loader calls `parse_virtual_servers` with the node itself.
An unknown key is an error. The health part (checkers, quorum, sorry server, notify
scripts) is read by config_health.py. keepalived's fallbacks are kept, as warnings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from ipaddress import IPv4Address, ip_address
from pathlib import Path
from typing import Any

import yaml

from ipvsctl.checks import health_of
from ipvsctl.config_health import real_server_keyword, virtual_server_keyword
from ipvsctl.health.config import HealthConfigError
from ipvsctl.model import (
    PROTOCOLS,
    SCHED_FLAG_KEYWORDS,
    SCHEDULERS,
    TUN_FLAGS,
    TUN_TYPES,
    WEIGHT_MAX,
    IPAddress,
    RealServer,
    VirtualServer,
)
from ipvsctl.yaml_nodes import Node, NodeReader


class ConfigError(Exception):
    """Every problem found, each as `file:line:col: error: message`."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class Loaded:
    virtual_servers: tuple[VirtualServer, ...]
    warnings: tuple[str, ...]


class _Reader(NodeReader):
    def __init__(self, source: str) -> None:
        super().__init__(source)
        self.warnings: list[str] = []

    def where(self, node: Node) -> str:
        line, col = self.line_col(node)
        return f"{self.source}:{line}:{col}"

    def fail(self, node: Node, message: str) -> ConfigError:
        return ConfigError([f"{self.where(node)}: error: {message}"])

    def warn(self, node: Node, message: str) -> None:
        self.warnings.append(f"{self.where(node)}: warning: {message}")

    def address(self, node: Node, text: str) -> IPAddress:
        try:
            return ip_address(text)
        except ValueError:
            raise self.fail(node, f"'{text}' is not an IP address") from None

    def method(self, key: str, node: Node) -> tuple[str, dict[str, Any]]:
        """`NAT`, `DR`, or `TUN [type ipip|gue|gre] [port N] [nocsum|csum|remcsum]`."""
        words = self.scalar(key, node).split()
        name = words[0].upper()
        if name not in ("NAT", "DR", "TUN"):
            raise self.fail(node, f"'{key}' must be NAT, DR or TUN, got '{words[0]}'")
        tun: dict[str, Any] = {}
        rest = words[1:]
        if rest and name != "TUN":
            raise self.fail(node, f"'{key}' {name} takes no options")
        while rest:
            word = rest.pop(0).lower()
            if word == "type" and rest and rest[0].lower() in TUN_TYPES:
                tun["tun_type"] = rest.pop(0).lower()
            elif word == "port" and rest and rest[0].isdigit() and 0 < int(rest[0]) < 65536:
                tun["tun_port"] = int(rest.pop(0))
            elif word in TUN_FLAGS:
                tun["tun_flags"] = word
            else:
                raise self.fail(node, f"'{key}': unexpected '{word}' after TUN")
        if tun.get("tun_type") == "gue" and not tun.get("tun_port"):
            raise self.fail(node, f"'{key}': TUN type gue needs 'port N'")
        return name, tun


def _real_server(r: _Reader, vs_node: Node, name: Node, node: Node) -> RealServer:
    words = r.scalar("real_server", name).split()
    if not 1 <= len(words) <= 2:
        raise r.fail(name, f"real_server '{name.value}' must be 'IP [PORT]'")
    ip = r.address(name, words[0])
    port = None
    if len(words) == 2:
        if not words[1].isdigit() or int(words[1]) > 65535:
            raise r.fail(name, f"real_server port '{words[1]}' is not 0..65535")
        port = int(words[1])
    values: dict[str, Any] = {"ip": ip, "port": port}
    for k, v in r.mapping(name.value, node):
        key = k.value
        if key == "weight":
            values["weight"] = r.integer(key, v, 0, WEIGHT_MAX)
        elif key in ("uthreshold", "lthreshold"):
            values[key] = r.integer(key, v, 0, 2**31 - 1)
        elif key in ("lvs_method", "lb_kind"):
            values["lvs_method"], tun = r.method(key, v)
            values.update(tun)
        elif real_server_keyword(r, k, v, values):
            pass
        else:
            raise r.fail(k, f"unknown keyword '{key}' in real_server {name.value}")
    rs = RealServer(**values)
    if rs.lthreshold and rs.uthreshold and rs.lthreshold > rs.uthreshold:
        raise r.fail(node, f"real_server {name.value}: lthreshold {rs.lthreshold} is above "
                     f"uthreshold {rs.uthreshold} (the kernel refuses it, ERANGE)")
    return rs


def _virtual_server(r: _Reader, name: Node, node: Node) -> VirtualServer:
    words = r.scalar("virtual_server", name).split()
    values: dict[str, Any] = {"where": r.where(name)}
    if len(words) == 2 and words[0] == "fwmark":
        values["fwmark"] = int(words[1]) if words[1].isdigit() else 0
        if not 0 < values["fwmark"] < 2**32:
            raise r.fail(name, f"fwmark {words[1]} is outside 1..{2**32 - 1}")
    elif len(words) in (1, 2):
        values["ip"] = r.address(name, words[0])
        if len(words) == 2:
            if not words[1].isdigit() or int(words[1]) > 65535:
                raise r.fail(name, f"virtual_server port '{words[1]}' is not 0..65535")
            values["port"] = int(words[1])
    else:
        raise r.fail(name, f"virtual_server '{name.value}' must be 'IP [PORT]' or 'fwmark N'")
    where: dict[str, Node] = {}
    reals: list[RealServer] = []
    rs_nodes: list[Node] = []
    seen_rs: set[tuple[IPAddress, int | None]] = set()

    def sched(key: str, v: Node) -> str:
        value = r.scalar(key, v)
        if value not in SCHEDULERS:
            raise r.fail(v, f"'{key}' {value} is not one of {' '.join(SCHEDULERS)}")
        return value

    def protocol(key: str, v: Node) -> str:
        value = r.scalar(key, v).upper()
        if value not in PROTOCOLS:
            raise r.fail(v, f"protocol must be TCP, UDP or SCTP, got '{value}'")
        return value

    conv: dict[str, Callable[[str, Node], Any]] = {
        "lvs_sched": sched, "lb_algo": sched,
        "protocol": protocol,
        "persistence_timeout": lambda k, v: r.integer(k, v, 1, 2**31 - 1)
        if not (isinstance(v, yaml.ScalarNode) and v.value == "") else 360,
        "persistence_granularity": lambda k, v: r.scalar(k, v),
        "persistence_engine": lambda k, v: r.scalar(k, v),
        "ops": r.boolean,
        "ip_family": lambda k, v: r.scalar(k, v),
        "weight": lambda k, v: r.integer(k, v, 1, WEIGHT_MAX),
    }
    for k, v in r.mapping(name.value, node):
        key = k.value
        where[key] = v
        if key in ("lvs_method", "lb_kind"):
            values["lvs_method"], tun = r.method(key, v)
            if tun:
                raise r.fail(v, "tunnel options go on each real_server's lvs_method")
        elif key in conv:
            values["lvs_sched" if key == "lb_algo" else key] = conv[key](key, v)
        elif key in SCHED_FLAG_KEYWORDS:
            if r.boolean(key, v):
                values.setdefault("sched_flags", ())
                values["sched_flags"] += (key,)
        elif key == "real_server":
            for rk, rv in r.mapping(key, v):
                rs = _real_server(r, node, rk, rv)
                if (rs.ip, rs.port) in seen_rs:
                    r.warn(rk, f"real_server {rk.value} given twice; the second is dropped")
                    continue
                seen_rs.add((rs.ip, rs.port))
                reals.append(rs)
                rs_nodes.append(rk)
        elif virtual_server_keyword(r, k, v, values):
            pass
        else:
            raise r.fail(k, f"unknown keyword '{key}' in virtual_server {name.value}")
    vs = VirtualServer(**values, real_server=tuple(reals))
    vs = _check(r, name, vs, where)
    return _check_health(r, name, vs, where, rs_nodes)


def _check_health(r: _Reader, name: Node, vs: VirtualServer, where: dict[str, Node],
                  rs_nodes: list[Node]) -> VirtualServer:
    """Every checker must resolve; quorum and hysteresis get keepalived's clamps."""
    bare = replace(vs, where="")  # the error already carries the position
    for rs, node in zip(vs.real_server, rs_nodes, strict=True):
        try:
            health_of(bare, rs)
        except HealthConfigError as err:
            raise r.fail(node, str(err)) from None
    if vs.fwmark_rules is not None and vs.fwmark is None:
        raise r.fail(where["fwmark_rules"], "fwmark_rules only applies to fwmark services")
    if vs.sorry_server is not None and vs.fwmark is None and vs.ip is not None \
            and vs.sorry_server.ip.version != vs.ip.version \
            and (vs.sorry_server_lvs_method or vs.lvs_method) != "TUN":
        raise r.fail(where["sorry_server"], "sorry_server is of another address family")
    total = sum(rs.weight if rs.weight is not None else vs.weight for rs in vs.real_server)
    if vs.real_server and vs.quorum > total:  # check_data.c: clamped, with a warning
        r.warn(where.get("quorum", name), f"virtual_server {vs.name}: quorum {vs.quorum} "
               f"exceeds the total weight {total} of its real servers - reducing it to {total}")
        vs = replace(vs, quorum=max(total, 1))
    if vs.hysteresis >= vs.quorum:
        r.warn(where["hysteresis"], f"virtual_server {vs.name}: hysteresis {vs.hysteresis} "
               f"must be below quorum {vs.quorum} - setting it to {vs.quorum - 1}")
        vs = replace(vs, hysteresis=vs.quorum - 1)
    return vs


def _check(r: _Reader, name: Node, vs: VirtualServer, where: dict[str, Node]) -> VirtualServer:
    """keepalived's checks and fallbacks, with its warnings."""
    if vs.fwmark is None:
        if "protocol" not in where:
            r.warn(name, f"virtual_server {vs.name}: no protocol set - defaulting to UDP")
            vs = replace(vs, protocol="UDP")
        if vs.port == 0 and vs.persistence_timeout is None:
            r.warn(name, f"virtual_server {vs.name}: zero port only valid for persistent "
                   "services - setting persistence_timeout 360")
    elif "protocol" in where:
        r.warn(where["protocol"], "protocol specified for fwmark - protocol will be ignored")
    if "lvs_sched" not in where and "lb_algo" not in where:
        r.warn(name, f"virtual_server {vs.name}: no scheduler set, using wlc")
    if vs.ops and vs.fwmark is None and vs.protocol != "UDP":
        r.warn(where["ops"], "ops is only for UDP (and fwmark) services - ignored")
    if vs.ip_family not in (None, "inet", "inet6"):
        raise r.fail(where["ip_family"], f"ip_family must be inet or inet6, got {vs.ip_family}")
    if vs.ip_family and vs.fwmark is None:
        r.warn(where["ip_family"], "ip_family only applies to fwmark services - ignored")
    if vs.fwmark is None:
        af6 = vs.ip is not None and vs.ip.version == 6
    else:
        af6 = vs.ip_family == "inet6" or (vs.ip_family is None and bool(vs.real_server)
                                         and all(rs.ip.version == 6 for rs in vs.real_server))
    gran = vs.persistence_granularity
    if gran is not None:
        node = where["persistence_granularity"]
        if af6:
            if not gran.isdigit() or not 1 <= int(gran) <= 128:
                raise r.fail(node, f"persistence_granularity for IPv6 is a prefix length "
                             f"1..128, got '{gran}'")
        else:
            try:
                IPv4Address(gran)
            except ValueError:
                raise r.fail(node, f"persistence_granularity '{gran}' is not a dotted "
                             "netmask") from None
    for rs in vs.real_server:
        method = rs.lvs_method or vs.lvs_method
        if (rs.ip.version == 6) != af6 and method != "TUN":
            raise r.fail(name, f"virtual_server {vs.name}: real_server {rs.ip} is of another "
                         "address family, which only TUN forwarding allows")
    return vs


def parse_virtual_servers(node: Node, source: str) -> Loaded:
    """The value of a `virtual_server:` key (a YAML node) -> frozen model + warnings."""
    r = _Reader(source)
    out = [_virtual_server(r, k, v) for k, v in r.mapping("virtual_server", node)]
    return Loaded(tuple(out), tuple(r.warnings))


def loads(text: str, source: str = "<string>") -> Loaded:
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        raise ConfigError([f"{where}: error: {getattr(err, 'problem', err)}"]) from None
    if root is None:
        return Loaded((), ())
    if not isinstance(root, yaml.MappingNode):
        raise _Reader(source).fail(root, "the file must be a mapping with 'virtual_server'")
    for k, v in root.value:
        if k.value == "virtual_server":
            return parse_virtual_servers(v, source)
    return Loaded((), ())


def load(path: str | Path) -> Loaded:
    return loads(Path(path).read_text(), str(path))

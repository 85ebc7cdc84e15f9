"""The YAML front end: keepalived's keywords under the same names, positions kept.

    global_defs: {router_id: node1, vrrp_mcast_group4: 233.6.6.6}
    vrrp_instance:
      VI_1: {state: MASTER, interface: eth0, virtual_router_id: 50, priority: 100, ...}

YAML is our own format, so an unknown key is an error (a typo must not pass silently);
keepalived's own fallbacks (state without priority, nopreempt with state MASTER) are kept
as warnings so both front ends agree on meaning.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import yaml

from pyvrrp.config.diagnostics import ConfigError, Diagnostic
from pyvrrp.config.model import Config, GlobalDefs, Pos, VrrpInstance
from pyvrrp.config.vip import parse_vip

Node = yaml.Node


class _Reader:
    def __init__(self, source: str) -> None:
        self.source = source
        self.diags: list[Diagnostic] = []

    def pos(self, node: Node) -> Pos:
        return Pos(self.source, node.start_mark.line + 1, node.start_mark.column + 1)

    def fail(self, node: Node, message: str) -> ConfigError:
        return ConfigError([*self.diags, Diagnostic(self.pos(node), "error", message)])

    def warn(self, node: Node, message: str) -> None:
        self.diags.append(Diagnostic(self.pos(node), "warning", message))

    # -- scalar converters: each takes the key (for messages) and the value node ---------

    def scalar(self, key: str, node: Node) -> str:
        if not isinstance(node, yaml.ScalarNode) or node.value == "" and node.tag.endswith("null"):
            raise self.fail(node, f"'{key}' needs a single value")
        return str(node.value)

    def text(self, key: str, node: Node) -> str:
        return self.scalar(key, node)

    def integer(self, key: str, node: Node, lo: int, hi: int) -> int:
        raw = self.scalar(key, node)
        try:
            value = int(raw)
        except ValueError:
            raise self.fail(node, f"'{key}' must be an integer, got '{raw}'") from None
        if not lo <= value <= hi:
            raise self.fail(node, f"'{key}' {value} is outside {lo}..{hi}")
        return value

    def number(self, key: str, node: Node, lo: float, hi: float) -> float:
        raw = self.scalar(key, node)
        try:
            value = float(raw)
        except ValueError:
            raise self.fail(node, f"'{key}' must be a number, got '{raw}'") from None
        if not lo <= value <= hi:
            raise self.fail(node, f"'{key}' {raw} is outside {lo:g}..{hi:g}")
        return value

    def boolean(self, key: str, node: Node) -> bool:
        raw = self.scalar(key, node).lower()
        if raw in ("true", "yes", "on", "1"):
            return True
        if raw in ("false", "no", "off", "0"):
            return False
        raise self.fail(node, f"'{key}' must be true or false, got '{raw}'")

    def ipv4(self, key: str, node: Node) -> IPv4Address:
        raw = self.scalar(key, node)
        try:
            return IPv4Address(raw)
        except ValueError:
            raise self.fail(node, f"'{key}': '{raw}' is not an IPv4 address") from None

    def mapping(self, key: str, node: Node) -> list[tuple[Node, Node]]:
        if isinstance(node, yaml.ScalarNode) and node.tag.endswith("null"):
            return []
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, f"'{key}' must be a mapping")
        seen: set[str] = set()
        for k, _ in node.value:
            if k.value in seen:
                raise self.fail(k, f"'{k.value}' given twice in '{key}'")
            seen.add(k.value)
        return node.value

    def sequence(self, key: str, node: Node) -> list[Node]:
        if isinstance(node, yaml.ScalarNode) and not node.tag.endswith("null"):
            return [node]  # a single entry may be written without a list
        if isinstance(node, yaml.ScalarNode):
            return []
        if not isinstance(node, yaml.SequenceNode):
            raise self.fail(node, f"'{key}' must be a list")
        return node.value


def _global_defs(r: _Reader, node: Node) -> GlobalDefs:
    conv: dict[str, Callable[[str, Node], Any]] = {
        "router_id": r.text,
        "vrrp_mcast_group4": r.ipv4,
        "vrrp_version": lambda k, n: r.integer(k, n, 2, 3),
        "vrrp_garp_master_delay": lambda k, n: r.number(k, n, 0, 1000),
        "vrrp_garp_master_repeat": lambda k, n: r.integer(k, n, 1, 255),
        "vrrp_garp_master_refresh": lambda k, n: r.number(k, n, 0, 86400),
        "vrrp_garp_master_refresh_repeat": lambda k, n: r.integer(k, n, 1, 255),
        "vrrp_garp_lower_prio_repeat": lambda k, n: r.integer(k, n, 0, 255),
    }
    for f in fields(GlobalDefs):
        if f.type == "bool":
            conv[f.name] = r.boolean
    values: dict[str, Any] = {}
    where: dict[str, Node] = {}
    for k, v in r.mapping("global_defs", node):
        if k.value not in conv:
            raise r.fail(k, f"unknown keyword '{k.value}' in global_defs")
        values[k.value] = conv[k.value](k.value, v)
        where[k.value] = v
    gd = GlobalDefs(**values)
    if "vrrp_mcast_group4" in values and not gd.vrrp_mcast_group4.is_multicast:
        raise r.fail(where["vrrp_mcast_group4"],
                     f"vrrp_mcast_group4 {gd.vrrp_mcast_group4} is not a multicast address")
    return gd


def _instance(r: _Reader, name: Node, node: Node, gd: GlobalDefs) -> VrrpInstance:
    values: dict[str, Any] = {}
    where: dict[str, Node] = {}

    def auth(k: str, n: Node) -> tuple[str | None, str]:
        a_type, a_pass = None, ""
        for ak, av in r.mapping(k, n):
            if ak.value == "auth_type":
                a_type = r.text(ak.value, av).upper()
                if a_type != "PASS":
                    raise r.fail(av, f"auth_type {a_type} is not supported (only PASS)")
            elif ak.value == "auth_pass":
                a_pass = r.text(ak.value, av)
            else:
                raise r.fail(ak, f"unknown keyword '{ak.value}' in authentication")
        if a_type == "PASS" and not a_pass:
            raise r.fail(n, "auth_type PASS needs auth_pass")
        return a_type, a_pass

    def vips(k: str, n: Node) -> tuple[Any, ...]:
        out = []
        for item in r.sequence(k, n):
            try:
                out.append(parse_vip(r.text(k, item)))
            except ValueError as err:
                raise r.fail(item, f"virtual_ipaddress: {err}") from None
        return tuple(out)

    def state(k: str, n: Node) -> str:
        value = r.text(k, n).upper()
        if value not in ("MASTER", "BACKUP"):
            raise r.fail(n, f"state must be MASTER or BACKUP, got '{value}'")
        return value

    conv: dict[str, Callable[[str, Node], Any]] = {
        "state": state,
        "interface": r.text,
        "virtual_router_id": lambda k, n: r.integer(k, n, 1, 255),
        "priority": lambda k, n: r.integer(k, n, 1, 255),
        "advert_int": lambda k, n: r.number(k, n, 0.01, 255),
        "version": lambda k, n: r.integer(k, n, 2, 3),
        "nopreempt": r.boolean,
        "preempt_delay": lambda k, n: r.number(k, n, 0, 1000),
        "authentication": auth,
        "virtual_ipaddress": vips,
        "mcast_src_ip": r.ipv4,
        "unicast_src_ip": r.ipv4,
        "unicast_peer": lambda k, n: tuple(r.ipv4(k, i) for i in r.sequence(k, n)),
        "skip_check_adv_addr": r.boolean,
        "lower_prio_no_advert": r.boolean,
        "higher_prio_send_advert": r.boolean,
        "down_timer_adverts": lambda k, n: r.integer(k, n, 1, 100),
        "garp_master_delay": lambda k, n: r.number(k, n, 0, 1000),
        "garp_master_repeat": lambda k, n: r.integer(k, n, 1, 255),
        "garp_master_refresh": lambda k, n: r.number(k, n, 0, 86400),
        "garp_master_refresh_repeat": lambda k, n: r.integer(k, n, 1, 255),
        "garp_lower_prio_repeat": lambda k, n: r.integer(k, n, 0, 255),
    }
    for k, v in r.mapping(name.value, node):
        if k.value not in conv:
            raise r.fail(k, f"unknown keyword '{k.value}' in vrrp_instance {name.value}")
        values[k.value] = conv[k.value](k.value, v)
        where[k.value] = v
    for required in ("interface", "virtual_router_id"):
        if required not in values:
            raise r.fail(name, f"vrrp_instance {name.value} needs '{required}'")
    if "authentication" in values:
        values["auth_type"], values["auth_pass"] = values.pop("authentication")
    # keepalived: without priority, MASTER means owner (255) and BACKUP means 100;
    # without state, priority 255 means MASTER.
    if "priority" not in values:
        values["priority"] = 255 if values.get("state") == "MASTER" else 100
    if "state" not in values:
        values["state"] = "MASTER" if values["priority"] == 255 else "BACKUP"
    version = values.get("version", gd.vrrp_version)
    adv = values.get("advert_int", 1.0)
    if version == 2 and adv != int(adv):
        # keepalived 2.2.7 would put 0 or 1 s on the wire (issue #1615): refuse loudly.
        raise r.fail(where["advert_int"], f"advert_int {adv:g} is not whole seconds, "
                     "which VRRPv2 requires (use version 3 for sub-second adverts)")
    if version == 3 and adv > 40.95:
        # The v3 Max Adver Int is 12 bits of centiseconds (keepalived PR #2424).
        raise r.fail(where["advert_int"], f"advert_int {adv:g} is above 40.95 s, the most "
                     "VRRPv3 can carry")
    if version == 3 and values.get("auth_type"):
        r.warn(where["authentication"], "authentication is ignored with VRRPv3")
        values["auth_type"], values["auth_pass"] = None, ""
    if values.get("nopreempt") and values["state"] == "MASTER":
        r.warn(where["nopreempt"], "nopreempt will not work with initial state MASTER; "
               "clearing it")
        values["nopreempt"] = False
    if values.get("nopreempt") and values["priority"] == 255:
        r.warn(where["nopreempt"], "nopreempt is incompatible with priority 255; clearing it")
        values["nopreempt"] = False
    if values.get("preempt_delay") and values.get("nopreempt"):
        r.warn(where["preempt_delay"], "preempt_delay is ignored with nopreempt")
        values["preempt_delay"] = 0.0
    if not values.get("virtual_ipaddress"):
        raise r.fail(name, f"vrrp_instance {name.value} has no virtual_ipaddress")
    if values.get("unicast_peer") and not values.get("unicast_src_ip"):
        values["unicast_src_ip"] = values.get("mcast_src_ip")
    return VrrpInstance(name=str(name.value), pos=r.pos(name), **values)


def load_yaml(path: str | Path, text: str | None = None) -> tuple[Config, list[Diagnostic]]:
    """Load a YAML config; raise ConfigError (file:line:col) when it cannot run."""
    source = str(path)
    r = _Reader(source)
    if text is None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError.at(Pos(source, 1, 1), f"cannot read config: {err}") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise ConfigError.at(Pos(source, line, col), f"YAML syntax: {err.problem}") from None
    if root is None:
        raise ConfigError.at(Pos(source, 1, 1), "the config is empty")
    gd = GlobalDefs()
    instances: list[VrrpInstance] = []
    top = r.mapping("the config", root)
    for k, v in top:
        if k.value == "global_defs":
            gd = _global_defs(r, v)
    for k, v in top:
        if k.value == "global_defs":
            continue
        if k.value != "vrrp_instance":
            raise r.fail(k, f"unknown top-level keyword '{k.value}'")
        for name, body in r.mapping(k.value, v):
            instances.append(_instance(r, name, body, gd))
    _check_unique(r, instances)
    return Config(source, gd, tuple(instances)), r.diags


def _check_unique(r: _Reader, instances: list[VrrpInstance]) -> None:
    seen: dict[tuple[str, int], str] = {}
    for inst in instances:
        key = (inst.interface, inst.virtual_router_id)
        if key in seen:
            raise ConfigError([*r.diags, Diagnostic(
                inst.pos, "error", f"vrrp_instance {inst.name}: VRID {key[1]} on {key[0]} is "
                f"already used by {seen[key]}")])
        seen[key] = inst.name

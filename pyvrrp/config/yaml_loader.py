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

from ipvsctl.yaml_nodes import Node, NodeReader
from pyvrrp.config.diagnostics import ConfigError, Diagnostic
from pyvrrp.config.model import (
    Config,
    GlobalDefs,
    Notify,
    Pos,
    Track,
    TrackFile,
    TrackProcess,
    VrrpInstance,
    VrrpScript,
)
from pyvrrp.config.tracks import check_tracks
from pyvrrp.config.vip import parse_vip


class _Reader(NodeReader):
    def __init__(self, source: str) -> None:
        super().__init__(source)
        self.diags: list[Diagnostic] = []

    def pos(self, node: Node) -> Pos:
        return Pos(self.source, *self.line_col(node))

    def fail(self, node: Node, message: str) -> ConfigError:
        return ConfigError([*self.diags, Diagnostic(self.pos(node), "error", message)])

    def warn(self, node: Node, message: str) -> None:
        self.diags.append(Diagnostic(self.pos(node), "warning", message))

    def text(self, key: str, node: Node) -> str:
        return self.scalar(key, node)

    def ipv4(self, key: str, node: Node) -> IPv4Address:
        raw = self.scalar(key, node)
        try:
            return IPv4Address(raw)
        except ValueError:
            raise self.fail(node, f"'{key}': '{raw}' is not an IPv4 address") from None


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
        "notification_email": lambda k, n: tuple(r.text(k, i) for i in r.sequence(k, n)),
        "notification_email_from": r.text,
        "smtp_helo_name": r.text,
        "smtp_connect_timeout": lambda k, n: r.number(k, n, 1, 3600),
        "notify_fifo": r.text,
        "vrrp_notify_fifo": r.text,
    }
    for f in fields(GlobalDefs):
        if f.type == "bool":
            conv[f.name] = r.boolean
    values: dict[str, Any] = {}
    where: dict[str, Node] = {}
    for k, v in r.mapping("global_defs", node):
        if k.value == "smtp_server":
            # keepalived: `smtp_server IP [PORT]`
            words = r.text(k.value, v).split()
            if len(words) > 2 or (len(words) == 2 and not words[1].isdigit()):
                raise r.fail(v, "smtp_server takes an address and an optional port")
            values["smtp_server"] = words[0]
            if len(words) == 2:
                values["smtp_port"] = int(words[1])
            continue
        if k.value == "script_user":
            words = r.text(k.value, v).split()
            if len(words) > 2:
                raise r.fail(v, "script_user takes a user and an optional group")
            values["script_user"] = words[0]
            values["script_group"] = words[1] if len(words) == 2 else None
            continue
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
        "track_script": lambda k, n: _tracks(r, k, n, 253),
        "track_interface": lambda k, n: _tracks(r, k, n, 253),
        "track_file": lambda k, n: _tracks(r, k, n, 254),
        "track_process": lambda k, n: _tracks(r, k, n, 254),
        "smtp_alert": r.boolean,
    }
    for key in NOTIFY_KEYS:
        conv[key] = r.text
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
    values["notify"] = Notify(**{NOTIFY_KEYS[k]: values.pop(k) for k in list(values)
                                 if k in NOTIFY_KEYS})
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


NOTIFY_KEYS = {"notify_master": "master", "notify_backup": "backup", "notify_fault": "fault",
               "notify_stop": "stop", "notify": "any",
               "notify_master_rx_lower_pri": "master_rx_lower_pri"}


def _weight(r: _Reader, node: Node, text: str, bound: int) -> tuple[int, bool]:
    """keepalived's `N [reverse]` weight syntax."""
    words = text.split()
    try:
        weight = int(words[0])
    except (ValueError, IndexError):
        raise r.fail(node, f"weight must be an integer, got '{text}'") from None
    if not -bound <= weight <= bound:
        raise r.fail(node, f"weight {weight} is outside {-bound}..{bound}")
    if words[1:] not in ([], ["reverse"], ["no_reverse"]):
        raise r.fail(node, f"unexpected '{' '.join(words[1:])}' after the weight")
    return weight, words[1:] == ["reverse"]


def _tracks(r: _Reader, key: str, node: Node, bound: int) -> tuple[Track, ...]:
    """Entries written as keepalived writes them: `NAME [weight N [reverse]]`."""
    out = []
    for item in r.sequence(key, node):
        words = r.text(key, item).split()
        weight: int | None = None
        reverse = False
        if len(words) > 1:
            if words[1] != "weight" or len(words) < 3:
                raise r.fail(item, f"{key}: expected 'NAME [weight N [reverse]]'")
            weight, reverse = _weight(r, item, " ".join(words[2:]), bound)
        out.append(Track(words[0], r.pos(item), weight, reverse))
    return tuple(out)


def _script_owner(r: _Reader, node: Node, key: str) -> tuple[str, str | None]:
    words = r.text(key, node).split()
    if not 1 <= len(words) <= 2:
        raise r.fail(node, f"'{key}' takes a user and an optional group")
    return words[0], (words[1] if len(words) == 2 else None)


def _vrrp_script(r: _Reader, name: Node, node: Node) -> VrrpScript:
    values: dict[str, Any] = {}
    for k, v in r.mapping(name.value, node):
        key = k.value
        if key == "script":
            values["script"] = r.text(key, v)
        elif key in ("interval", "timeout"):
            values[key] = max(1, r.integer(key, v, 0, 86400))  # keepalived: 0 means 1
        elif key in ("rise", "fall"):
            values[key] = r.integer(key, v, 1, 1000)
        elif key == "weight":
            values["weight"], values["weight_reverse"] = _weight(r, v, r.text(key, v), 253)
        elif key == "user":
            values["user"], values["group"] = _script_owner(r, v, key)
        elif key == "init_fail":
            values["init_fail"] = r.boolean(key, v)
        else:
            raise r.fail(k, f"unknown keyword '{key}' in vrrp_script {name.value}")
    if "script" not in values:
        raise r.fail(name, f"vrrp_script {name.value} needs 'script'")
    return VrrpScript(name=str(name.value), pos=r.pos(name), **values)


def _track_file(r: _Reader, name: Node, node: Node) -> TrackFile:
    values: dict[str, Any] = {}
    for k, v in r.mapping(name.value, node):
        key = k.value
        if key == "file":
            values["file"] = r.text(key, v)
        elif key == "weight":
            values["weight"], values["reverse"] = _weight(r, v, r.text(key, v), 254)
        elif key == "init_file":
            words = r.text(key, v).split()
            values["init_overwrite"] = "overwrite" in words
            nums = [w for w in words if w != "overwrite"]
            values["init_file"] = int(nums[0]) if nums and nums[0].lstrip("-").isdigit() else 0
        else:
            raise r.fail(k, f"unknown keyword '{key}' in track_file {name.value}")
    if "file" not in values:
        raise r.fail(name, f"track_file {name.value} needs 'file'")
    return TrackFile(name=str(name.value), pos=r.pos(name), **values)


def _track_process(r: _Reader, name: Node, node: Node) -> TrackProcess:
    values: dict[str, Any] = {}
    for k, v in r.mapping(name.value, node):
        key = k.value
        if key == "process":
            words = r.text(key, v).split(maxsplit=1)
            values["process"] = words[0]
            values["parameters"] = words[1] if len(words) > 1 else ""
        elif key == "param_match":
            values["param_match"] = r.text(key, v)
            if values["param_match"] not in ("initial", "partial"):
                raise r.fail(v, "param_match must be 'initial' or 'partial'")
        elif key == "weight":
            values["weight"], values["weight_reverse"] = _weight(r, v, r.text(key, v), 254)
        elif key in ("quorum", "quorum_max"):
            values[key] = r.integer(key, v, 1, 65535)
        elif key in ("delay", "fork_delay", "terminate_delay"):
            values["delay"] = max(values.get("delay", 0.0), r.number(key, v, 0, 3600))
        elif key == "full_command":
            values["full_command"] = r.boolean(key, v)
        else:
            raise r.fail(k, f"unknown keyword '{key}' in vrrp_track_process {name.value}")
    if "process" not in values:
        raise r.fail(name, f"vrrp_track_process {name.value} needs 'process'")
    return TrackProcess(name=str(name.value), pos=r.pos(name), **values)


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
    blocks: dict[str, tuple[Callable[[_Reader, Node, Node], Any], list[Any]]] = {
        "vrrp_script": (_vrrp_script, []),
        "track_file": (_track_file, []),
        "vrrp_track_process": (_track_process, []),
    }
    top = r.mapping("the config", root)
    extra: dict[str, Any] = {}
    for k, v in top:
        if k.value == "global_defs":
            gd = _global_defs(r, v)
    for k, v in top:
        if k.value == "global_defs":
            continue
        if k.value in blocks:
            make, found = blocks[k.value]
            found += [make(r, name, body) for name, body in r.mapping(k.value, v)]
            continue
        if k.value in ("vrrp_sync_group", "unsupported", "virtual_server"):
            from pyvrrp.config import yaml_ext  # sections the keepalived.conf front end added

            extra[k.value] = yaml_ext.SECTIONS[k.value](r, v)
            continue
        if k.value != "vrrp_instance":
            raise r.fail(k, f"unknown top-level keyword '{k.value}'")
        for name, body in r.mapping(k.value, v):
            instances.append(_instance(r, name, body, gd))
    _check_unique(r, instances)
    config = Config(source, gd, tuple(instances), tuple(blocks["vrrp_script"][1]),
                    tuple(blocks["track_file"][1]), tuple(blocks["vrrp_track_process"][1]),
                    vrrp_sync_groups=extra.get("vrrp_sync_group", ()),
                    unsupported=extra.get("unsupported", ()),
                    virtual_servers=extra.get("virtual_server", ()))
    return check_tracks(config, r.diags), r.diags


def _check_unique(r: _Reader, instances: list[VrrpInstance]) -> None:
    seen: dict[tuple[str, int], str] = {}
    for inst in instances:
        key = (inst.interface, inst.virtual_router_id)
        if key in seen:
            raise ConfigError([*r.diags, Diagnostic(
                inst.pos, "error", f"vrrp_instance {inst.name}: VRID {key[1]} on {key[0]} is "
                f"already used by {seen[key]}")])
        seen[key] = inst.name

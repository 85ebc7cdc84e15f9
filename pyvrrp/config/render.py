"""The model -> YAML text, and the model -> keepalived.conf text, for `pyvrrp convert`.

Both writers are deterministic and write only what differs from the defaults (state and
priority always), so converting twice gives the same text. keepalived.conf output puts
vrrp_script / track_file / vrrp_track_process before the instances, because keepalived
looks them up while it reads an instance. RawStatements ("parsed, not supported") go back
where they stood: into global_defs, the instance, the sync group, or the top level.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from typing import Any

import yaml

from ipvsctl.health.config import Checker, HttpGet, MiscCheck, SslGet, Url
from ipvsctl.model import RealServer, VirtualServer
from pyvrrp.config.lexer import quote_word
from pyvrrp.config.model import (
    Config,
    GlobalDefs,
    Notify,
    RawStatement,
    Track,
    TrackFile,
    TrackProcess,
    VrrpInstance,
    VrrpScript,
    VrrpSyncGroup,
)
from pyvrrp.config.vip import format_vip

NOTIFY_KEYS = (("master", "notify_master"), ("backup", "notify_backup"),
               ("fault", "notify_fault"), ("stop", "notify_stop"), ("any", "notify"),
               ("master_rx_lower_pri", "notify_master_rx_lower_pri"))
TRACK_KINDS = ("track_interface", "track_script", "track_file", "track_process")
DEFAULT_GD = GlobalDefs()


def num(v: float) -> str:
    """1.0 -> "1", 0.5 -> "0.5": how keepalived and a person write it."""
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def weight_words(weight: int, reverse: bool) -> tuple[str, ...]:
    return (str(weight), "reverse") if reverse else (str(weight),)


def track_text(t: Track) -> str:
    if t.weight is None:
        return quote_word(t.name)
    return " ".join([quote_word(t.name), "weight", *weight_words(t.weight, t.reverse)])


def raw_words(s: RawStatement) -> str:
    return " ".join(quote_word(w) for w in (s.keyword, *s.args))


def _raw_by_context(config: Config) -> dict[tuple[str, ...], list[RawStatement]]:
    out: dict[tuple[str, ...], list[RawStatement]] = {}
    for s in config.unsupported:
        out.setdefault(s.context, []).append(s)
    return out


# -- the field lists both writers share ---------------------------------------------------------


def global_items(gd: GlobalDefs) -> list[tuple[str, Any]]:
    """(keyword, value) for every global_defs setting that is not the default."""
    out: list[tuple[str, Any]] = []
    for key in ("router_id", "notification_email_from"):
        if getattr(gd, key) is not None:
            out.append((key, getattr(gd, key)))
    if gd.notification_email:
        out.append(("notification_email", list(gd.notification_email)))
    if gd.smtp_server is not None:
        port = (str(gd.smtp_port),) if gd.smtp_port != 25 else ()
        out.append(("smtp_server", (gd.smtp_server, *port)))
    for key in ("smtp_helo_name",):
        if getattr(gd, key) is not None:
            out.append((key, getattr(gd, key)))
    for key in ("smtp_connect_timeout", "vrrp_mcast_group4", "vrrp_version",
                "vrrp_garp_master_delay", "vrrp_garp_master_repeat", "vrrp_garp_master_refresh",
                "vrrp_garp_master_refresh_repeat", "vrrp_garp_lower_prio_repeat"):
        value = getattr(gd, key)
        if value != getattr(DEFAULT_GD, key):
            out.append((key, value))
    for key in ("vrrp_skip_check_adv_addr", "vrrp_strict", "vrrp_min_garp",
                "vrrp_lower_prio_no_advert", "vrrp_higher_prio_send_advert", "smtp_alert",
                "enable_script_security", "dynamic_interfaces"):
        if getattr(gd, key):
            out.append((key, True))
    if gd.script_user is not None:
        group = (gd.script_group,) if gd.script_group else ()
        out.append(("script_user", (gd.script_user, *group)))
    for key in ("notify_fifo", "vrrp_notify_fifo"):
        if getattr(gd, key) is not None:
            out.append((key, getattr(gd, key)))
    return out


def instance_items(i: VrrpInstance, keepalived: bool = False) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = [("state", i.state), ("interface", i.interface),
                                  ("virtual_router_id", i.virtual_router_id),
                                  ("priority", i.priority)]
    if i.advert_int != 1.0:
        out.append(("advert_int", i.advert_int))
    if i.version is not None:
        out.append(("version", i.version))
    if i.nopreempt:
        out.append(("nopreempt", True))
    if i.preempt_delay:
        out.append(("preempt_delay", i.preempt_delay))
    if i.auth_type:
        out.append(("authentication", {"auth_type": i.auth_type, "auth_pass": i.auth_pass}))
    out.append(("virtual_ipaddress", [format_vip(v) for v in i.virtual_ipaddress]))
    # keepalived has one source address: unicast_src_ip sets mcast_src_ip's value too
    same = keepalived and i.unicast_src_ip is not None and i.unicast_src_ip == i.mcast_src_ip
    if i.mcast_src_ip is not None and not same:
        out.append(("mcast_src_ip", i.mcast_src_ip))
    if i.unicast_src_ip is not None:
        out.append(("unicast_src_ip", i.unicast_src_ip))
    if i.unicast_peer:
        out.append(("unicast_peer", [str(p) for p in i.unicast_peer]))
    if i.skip_check_adv_addr is not None and (i.skip_check_adv_addr or not keepalived):
        out.append(("skip_check_adv_addr", i.skip_check_adv_addr))  # keepalived can't say false
    for key in ("lower_prio_no_advert", "higher_prio_send_advert", "garp_master_delay",
                "garp_master_repeat", "garp_master_refresh", "garp_master_refresh_repeat",
                "garp_lower_prio_repeat", "smtp_alert"):
        if getattr(i, key) is not None:
            out.append((key, getattr(i, key)))
    if i.down_timer_adverts != 3:
        out.append(("down_timer_adverts", i.down_timer_adverts))
    for kind in TRACK_KINDS:
        if getattr(i, kind):
            out.append((kind, [track_text(t) for t in getattr(i, kind)]))
    out += notify_items(i.notify)
    return out


def notify_items(n: Notify) -> list[tuple[str, Any]]:
    return [(key, getattr(n, field)) for field, key in NOTIFY_KEYS
            if getattr(n, field) is not None]


def group_items(g: VrrpSyncGroup) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = [("group", list(g.group))]
    for kind in TRACK_KINDS:
        if getattr(g, kind):
            out.append((kind, [track_text(t) for t in getattr(g, kind)]))
    out += notify_items(g.notify)
    if g.smtp_alert is not None:
        out.append(("smtp_alert", g.smtp_alert))
    if g.sync_group_tracking_weight:
        out.append(("sync_group_tracking_weight", True))
    if g.notify_priority_changes is not None:
        out.append(("notify_priority_changes", g.notify_priority_changes))
    return out


def script_items(s: VrrpScript) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = [("script", s.script), ("interval", s.interval)]
    if s.timeout is not None:
        out.append(("timeout", s.timeout))
    if s.weight or s.weight_reverse:
        out.append(("weight", weight_words(s.weight, s.weight_reverse)))
    out += [("rise", s.rise), ("fall", s.fall)]
    if s.user is not None:
        out.append(("user", (s.user, s.group) if s.group else (s.user,)))
    if s.init_fail:
        out.append(("init_fail", True))
    return out


def file_items(f: TrackFile) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = [("file", f.file)]
    if f.weight != 1 or f.reverse:
        out.append(("weight", weight_words(f.weight, f.reverse)))
    if f.init_file is not None or f.init_overwrite:
        words = (str(f.init_file or 0),) + (("overwrite",) if f.init_overwrite else ())
        out.append(("init_file", words))
    return out


def process_items(p: TrackProcess, keepalived: bool = False) -> list[tuple[str, Any]]:
    proc = (p.process, *p.parameters.split()) if p.parameters else (p.process,)
    out: list[tuple[str, Any]] = [("process", proc)]
    if p.param_match is not None:
        out.append(("param_match", p.param_match))
    if p.weight != 1 or p.weight_reverse:
        out.append(("weight", weight_words(p.weight, p.weight_reverse)))
    if p.quorum != 1:
        out.append(("quorum", p.quorum))
    if p.quorum_max is not None:
        out.append(("quorum_max", p.quorum_max))
    if p.delay:
        out.append(("delay", p.delay))
    implied = keepalived and (p.parameters or p.param_match)  # keepalived: args imply it
    if p.full_command and not implied:
        out.append(("full_command", True))
    return out


def vs_name(vs: VirtualServer) -> tuple[str, ...]:
    if vs.fwmark is not None:
        return ("fwmark", str(vs.fwmark))
    return (str(vs.ip), str(vs.port))


def rs_name(rs: RealServer) -> tuple[str, ...]:
    return (str(rs.ip), *(() if rs.port is None else (str(rs.port),)))


@dataclass(frozen=True)
class Block:
    """A nested `{ }` block whose keys may repeat (several urls, several checkers)."""

    items: tuple[tuple[str, Any], ...]


VS_CHECK_KEYS = ("delay_loop", "retry", "delay_before_retry", "connect_timeout", "warmup",
                 "virtualhost")
RS_CHECK_KEYS = ("inhibit_on_failure", "alpha", "retry", "delay_before_retry", "delay_loop",
                 "connect_timeout", "warmup", "virtualhost", "notify_up", "notify_down")


def _set(obj: Any, keys: Iterable[str]) -> list[tuple[str, Any]]:
    return [(k, getattr(obj, k)) for k in keys if getattr(obj, k) is not None]


def url_items(u: Url) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = [("path", u.path)]
    if u.status_code:
        out.append(("status_code", tuple(str(lo) if lo == hi else f"{lo}-{hi}"
                                         for lo, hi in u.status_code)))
    return out + _set(u, ("digest", "virtualhost"))


def checker_items(c: Checker) -> list[tuple[str, Any]]:
    out = _set(c, ("retry", "delay_before_retry", "warmup", "delay_loop", "alpha"))
    if not isinstance(c, MiscCheck):
        out += _set(c, ("connect_ip", "connect_port", "bindto", "bind_port",
                        "connect_timeout"))
    if isinstance(c, HttpGet):
        out += _set(c, ("virtualhost",))
        if c.http_protocol != "1.0":
            out.append(("http_protocol", c.http_protocol))
        if c.fast_recovery:
            out.append(("fast_recovery", True))
        if isinstance(c, SslGet) and c.enable_sni:
            out.append(("enable_sni", True))
        out += [("url", Block(tuple(url_items(u)))) for u in c.urls]
    if isinstance(c, MiscCheck):
        out += [("misc_path", c.misc_path), *_set(c, ("misc_timeout",))]
        if c.misc_dynamic:
            out.append(("misc_dynamic", True))
        if c.user is not None:
            out.append(("user", (c.user, *((c.group,) if c.group else ()))))
    return out


def vs_health_items(vs: VirtualServer) -> list[tuple[str, Any]]:
    out = _set(vs, VS_CHECK_KEYS)
    out += [(k, True) for k in ("alpha", "omega", "inhibit_on_failure") if getattr(vs, k)]
    if vs.quorum != 1:
        out.append(("quorum", vs.quorum))
    if vs.hysteresis:
        out.append(("hysteresis", vs.hysteresis))
    out += _set(vs, ("quorum_up", "quorum_down"))
    if vs.sorry_server is not None:
        sorry = vs.sorry_server
        out.append(("sorry_server", (str(sorry.ip), *(() if sorry.port is None
                                                     else (str(sorry.port),)))))
        if vs.sorry_server_lvs_method is not None:
            out.append(("sorry_server_lvs_method", vs.sorry_server_lvs_method))
        if vs.sorry_server_inhibit:
            out.append(("sorry_server_inhibit", True))
    return out


def rs_health_items(rs: RealServer) -> list[tuple[str, Any]]:
    out = _set(rs, RS_CHECK_KEYS)
    return out + [(c.kind, Block(tuple(checker_items(c)))) for c in rs.checkers]


def vs_items(vs: VirtualServer) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = [("lvs_sched", vs.lvs_sched), ("lvs_method", vs.lvs_method)]
    if vs.fwmark is None:
        out.append(("protocol", vs.protocol))
    for key in ("persistence_timeout", "persistence_granularity", "persistence_engine",
                "ip_family"):
        if getattr(vs, key) is not None:
            out.append((key, getattr(vs, key)))
    if vs.ops:
        out.append(("ops", True))
    out += [(flag, True) for flag in vs.sched_flags]
    if vs.weight != 1:
        out.append(("weight", vs.weight))
    return out + vs_health_items(vs)


def rs_items(rs: RealServer) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    if rs.weight is not None:
        out.append(("weight", rs.weight))
    if rs.lvs_method is not None:
        words = [rs.lvs_method]
        if rs.lvs_method == "TUN":
            if rs.tun_type != "ipip":
                words += ["type", rs.tun_type]
            if rs.tun_port:
                words += ["port", str(rs.tun_port)]
            if rs.tun_flags != "nocsum":
                words.append(rs.tun_flags)
        out.append(("lvs_method", tuple(words)))
    for key in ("uthreshold", "lthreshold"):
        if getattr(rs, key):
            out.append((key, getattr(rs, key)))
    return out + rs_health_items(rs)


# -- YAML ---------------------------------------------------------------------------------------


def _yaml_value(v: Any) -> Any:
    if isinstance(v, IPv4Address | IPv6Address):
        return str(v)
    if isinstance(v, Block):
        return _mapping(v.items)
    if isinstance(v, float):
        return int(v) if v.is_integer() else v
    if isinstance(v, tuple):
        return " ".join(v)
    if isinstance(v, list):
        return [_yaml_value(x) for x in v]
    if isinstance(v, dict):
        return {k: _yaml_value(x) for k, x in v.items()}
    return v


def _mapping(items: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """A repeated key (several urls or checkers of one kind) becomes a list, as ipvsctl's
    YAML reads it."""
    out: dict[str, Any] = {}
    repeated: set[str] = set()
    for k, v in items:
        value = _yaml_value(v)
        if k in out:
            if k not in repeated:
                out[k] = [out[k]]
                repeated.add(k)
            out[k].append(value)
        else:
            out[k] = value
    return out


def raw_yaml(s: RawStatement) -> Any:
    if s.block is None:
        return raw_words(s)
    return {raw_words(s): [raw_yaml(c) for c in s.block]}


def _vs_yaml(vs: VirtualServer) -> dict[str, Any]:
    out = _mapping(vs_items(vs))
    if vs.fwmark_rules is not None:  # ours, YAML only: keepalived.conf cannot say it
        rules = vs.fwmark_rules
        out["fwmark_rules"] = {"vip": [str(v) for v in rules.vip], "ports": list(rules.ports),
                               "protocol": rules.protocol}
    out["real_server"] = {" ".join(rs_name(rs)): _mapping(rs_items(rs))
                          for rs in vs.real_server}
    return out


def to_yaml(config: Config) -> str:
    doc: dict[str, Any] = {}
    gd = _mapping(global_items(config.global_defs))
    if gd:
        doc["global_defs"] = gd
    if config.vrrp_scripts:
        doc["vrrp_script"] = {s.name: _mapping(script_items(s)) for s in config.vrrp_scripts}
    if config.track_files:
        doc["track_file"] = {f.name: _mapping(file_items(f)) for f in config.track_files}
    if config.track_processes:
        doc["vrrp_track_process"] = {p.name: _mapping(process_items(p))
                                     for p in config.track_processes}
    if config.vrrp_instances:
        doc["vrrp_instance"] = {i.name: _mapping(instance_items(i))
                                for i in config.vrrp_instances}
    if config.vrrp_sync_groups:
        doc["vrrp_sync_group"] = {g.name: _mapping(group_items(g))
                                  for g in config.vrrp_sync_groups}
    if config.virtual_servers:
        doc["virtual_server"] = {" ".join(vs_name(vs)): _vs_yaml(vs)
                                 for vs in config.virtual_servers}
    if config.unsupported:
        doc["unsupported"] = {" ".join(ctx) or "top": [raw_yaml(s) for s in stmts]
                              for ctx, stmts in _raw_by_context(config).items()}
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100)


# -- keepalived.conf ----------------------------------------------------------------------------

INDENT = "    "


def quote_command(cmd: str) -> str:
    """A script command line, as keepalived's quoted/escaped re-read gives it back."""
    return '"' + cmd.replace("\\", "\\\\").replace('"', '\\"') + '"'


_COMMANDS = {"script", *(k for _, k in NOTIFY_KEYS), "notify_up", "notify_down", "quorum_up",
             "quorum_down", "misc_path"}


def _conf_lines(items: list[tuple[str, Any]], depth: int) -> list[str]:
    pad = INDENT * depth
    out: list[str] = []
    for key, value in items:
        if isinstance(value, Block):
            out.append(f"{pad}{key} {{")
            out += _conf_lines(list(value.items), depth + 1)
            out.append(f"{pad}}}")
        elif isinstance(value, dict):
            out.append(f"{pad}{key} {{")
            out += _conf_lines(list(value.items()), depth + 1)
            out.append(f"{pad}}}")
        elif isinstance(value, list):
            out.append(f"{pad}{key} {{")
            out += [f"{pad}{INDENT}{x}" for x in value]
            out.append(f"{pad}}}")
        elif value is True:
            out.append(f"{pad}{key}")
        elif value is False:
            out.append(f"{pad}{key} false")
        elif key in _COMMANDS:
            out.append(f"{pad}{key} {quote_command(value)}")
        elif isinstance(value, tuple):
            out.append(f"{pad}{key} {' '.join(quote_word(w) for w in value)}")
        elif isinstance(value, str):
            out.append(f"{pad}{key} {quote_word(value)}")
        elif isinstance(value, float):
            out.append(f"{pad}{key} {num(value)}")
        else:
            out.append(f"{pad}{key} {value}")
    return out


def raw_conf(s: RawStatement, depth: int) -> list[str]:
    pad = INDENT * depth
    if s.block is None:
        return [pad + raw_words(s)]
    lines = [f"{pad}{raw_words(s)} {{"]
    for child in s.block:
        lines += raw_conf(child, depth + 1)
    return [*lines, pad + "}"]


def _block(head: str, items: list[tuple[str, Any]], raws: list[RawStatement]) -> list[str]:
    lines = [f"{head} {{", *_conf_lines(items, 1)]
    for s in raws:
        lines += raw_conf(s, 1)
    return [*lines, "}"]


def _vs_conf(vs: VirtualServer, raws: dict[tuple[str, ...], list[RawStatement]]
             ) -> list[str]:
    head = ("virtual_server", *vs_name(vs))
    lines = [f"{' '.join(head)} {{", *_conf_lines(vs_items(vs), 1)]
    for s in raws.get(head, []):
        lines += raw_conf(s, 1)
    for rs in vs.real_server:
        name = ("real_server", *rs_name(rs))
        lines += [f"{INDENT}{' '.join(name)} {{", *_conf_lines(rs_items(rs), 2)]
        for s in raws.get((*head, *name), []):
            lines += raw_conf(s, 2)
        lines.append(INDENT + "}")
    return [*lines, "}"]


def to_keepalived(config: Config) -> str:
    raws = _raw_by_context(config)
    lines: list[str] = []
    gd_items = global_items(config.global_defs)
    if gd_items or raws.get(("global_defs",)):
        lines += _block("global_defs", gd_items, raws.get(("global_defs",), []))
    for s in config.vrrp_scripts:
        lines += _block(f"vrrp_script {quote_word(s.name)}", script_items(s), [])
    for f in config.track_files:
        lines += _block(f"track_file {quote_word(f.name)}", file_items(f), [])
    for p in config.track_processes:
        lines += _block(f"vrrp_track_process {quote_word(p.name)}", process_items(p, True), [])
    for i in config.vrrp_instances:
        lines += _block(f"vrrp_instance {quote_word(i.name)}", instance_items(i, True),
                        raws.get(("vrrp_instance", i.name), []))
    for g in config.vrrp_sync_groups:
        lines += _block(f"vrrp_sync_group {quote_word(g.name)}", group_items(g),
                        raws.get(("vrrp_sync_group", g.name), []))
    for vs in config.virtual_servers:
        lines += _vs_conf(vs, raws)
    for s in raws.get((), []):
        lines += raw_conf(s, 0)
    return "\n".join(lines) + "\n"

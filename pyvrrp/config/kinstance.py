"""vrrp_instance and vrrp_sync_group from keepalived.conf, with keepalived's fallbacks.

Reading follows keepalived 2.2.7's handlers in vrrp_parser.c; completion follows
chk_min_cfg(), vrrp_complete_instance() and check_vrid_conflicts() in vrrp.c. keepalived
stops the VRRP process (an error here) when an instance has no virtual_router_id or no
usable interface, when VRRPv3 or strict mode has no VIP, or when two multicast instances
share a VRID on one interface and group.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from pyvrrp.config.kcomplete import NOTIFY, Completion
from pyvrrp.config.keepalived import Scope, command, garp_value, track_list
from pyvrrp.config.kvalues import read_bool, read_decimal, read_int, read_ip, read_uint
from pyvrrp.config.lexer import Segment
from pyvrrp.config.model import (
    GlobalDefs,
    Notify,
    Pos,
    VirtualIP,
    VrrpSyncGroup,
)
from pyvrrp.config.parser import Stmt
from pyvrrp.config.vip import SCOPES

# raw keywords that still change what keepalived does with the model's values
UNICAST_KEYWORDS = ("unicast_fault_no_peer", "check_unicast_src", "old_unicast_checksum")


@dataclass
class _Inst:
    name: str
    pos: Pos
    v: dict[str, Any] = field(default_factory=dict)  # VrrpInstance fields read so far
    at: dict[str, Pos] = field(default_factory=dict)  # where each was set
    state: str | None = None
    priority: int | None = None
    vips: list[VirtualIP] = field(default_factory=list)
    peers: list[IPv4Address] = field(default_factory=list)
    unicast_configured: bool = False
    strict: bool | None = None
    notify: dict[str, str] = field(default_factory=dict)
    auth_type: str | None = None
    auth_pass: str = ""
    ttl_set: bool = False
    mcast_dst: IPv4Address | None = None
    dropped: set[str] = field(default_factory=set)  # keywords left without their value
    fault_no_peer: bool = False
    vmac: bool = False  # use_vmac / use_ipvlan (kept raw; they still change the verdict)
    xmit_base: bool = False
    failed: bool = False  # pyvrrp refused part of it (already an error)


class Instances(Completion):
    """Reads instances and sync groups (this module); completes them (kcomplete.py)."""

    def __init__(self, scope: Scope, gd: GlobalDefs) -> None:
        self.scope = scope
        self.report = scope.report
        self.gd = gd
        self.items: list[_Inst] = []
        self.groups: list[tuple[Stmt, VrrpSyncGroup]] = []

    # -- reading -------------------------------------------------------------------------

    def read(self, stmt: Stmt) -> None:
        if stmt.skipped:
            if len(stmt.args) != 1:
                self.report.warning(stmt.pos, "vrrp_instance must have a name - skipping it")
            else:
                self.report.warning(stmt.args[0].pos, f"vrrp instance {stmt.args[0].text} "
                                    "already defined - skipping it")
            return
        inst = _Inst(stmt.args[0].text, stmt.args[0].pos, dropped=stmt.dropped)
        for s in stmt.block or []:
            inst.at.setdefault(s.name, s.pos)
            if not s.kw.model:
                self._raw(inst, s)
                continue
            handler = getattr(self, "_" + s.name, None)
            if s.name in NOTIFY:
                self._notify(inst, inst.notify, s)
            elif s.name.startswith("track_"):
                inst.v[s.name] = track_list(self.scope, inst.name, s)
            elif s.name.startswith("garp_") and s.args:
                garp_value(self.scope, s, s.name, inst.v, s.name)
            elif handler is not None and (s.args or s.kw.args == 0):
                handler(inst, s)
        self._end(inst)
        self.items.append(inst)

    def _end(self, inst: _Inst) -> None:
        """keepalived's vrrp_end_handler(), at the instance's closing brace."""
        if inst.unicast_configured and inst.vmac and not inst.xmit_base:
            self.report.warning(inst.pos, f"({inst.name}) unicast with use_vmac requires "
                                "vmac_xmit_base - setting")
            inst.xmit_base = True
        if inst.ttl_set and not inst.peers:
            self.report.warning(inst.at.get("unicast_ttl", inst.pos), f"({inst.name}): Cannot "
                                "use unicast_ttl without unicast peers - resetting")

    def _raw(self, inst: _Inst, s: Stmt) -> None:
        self.scope.keep(s, ("vrrp_instance", inst.name))
        if s.name in UNICAST_KEYWORDS:
            inst.unicast_configured = True
            inst.fault_no_peer = inst.fault_no_peer or s.name == "unicast_fault_no_peer"
        elif s.name == "debug" and s.args:
            if read_uint(s.args[0].text, 0, 4).value is None:
                self.report.warning(s.args[0].pos, f"({inst.name}) Debug value "
                                    f"'{s.args[0].text}' not valid; must be between 0-4")
        elif s.name in ("use_vmac", "use_ipvlan"):
            inst.vmac = True
        elif s.name == "vmac_xmit_base":
            inst.xmit_base = True
        elif s.name == "strict_mode":
            value = self.scope.flag(s, "strict_mode")
            if value is not None:
                inst.strict = value
        elif s.name == "unicast_ttl" and s.args:
            n = read_uint(s.args[0].text, 0, 255)
            if n.value is None:
                self.report.warning(s.args[0].pos, f"({inst.name}): TTL {n.problem} - must "
                                    "be between 0 & 255")
            else:
                inst.ttl_set = True
        elif s.name == "mcast_dst_ip" and s.args:
            ip = read_ip(s.args[0].text)
            if not isinstance(ip, IPv4Address) or not ip.is_multicast:
                self.report.warning(s.args[0].pos, f"({inst.name}) mcast_dst_ip "
                                    f"{s.args[0].text} not multicast. Skipping...")
            else:
                inst.mcast_dst = ip

    def _notify(self, inst: _Inst | None, into: dict[str, str], s: Stmt) -> None:
        owner = inst.name if inst else "sync group"
        if s.name in into:
            self.report.warning(s.pos, f"({owner}) {s.name} script already specified - "
                                f"ignoring {s.arg(0)}")
            return
        cmd = command(self.scope, s)
        if cmd is not None:
            into[s.name] = cmd

    def _state(self, inst: _Inst, s: Stmt) -> None:
        value = s.args[0].text
        if value == "MASTER":
            inst.state = "MASTER"
        elif value == "BACKUP":
            if inst.state == "MASTER":
                self.report.warning(s.args[0].pos, f"({inst.name}) state previously set as "
                                    "MASTER - ignoring BACKUP")
            else:
                inst.state = "BACKUP"
        else:
            self.report.warning(s.args[0].pos, f"({inst.name}) unknown state '{value}', "
                                "defaulting to BACKUP")
            inst.state = "BACKUP"
        inst.at["state"] = s.args[0].pos

    def _interface(self, inst: _Inst, s: Stmt) -> None:
        name = s.args[0].text
        if len(name) >= 16:
            self.report.warning(s.args[0].pos, f"interface name '{name}' too long - ignoring")
            return
        inst.v["interface"] = name
        inst.at["interface"] = s.args[0].pos
        self.scope.missing_interface(name, s.args[0], f"vrrp_instance {inst.name}", vrrp=True)

    def _virtual_router_id(self, inst: _Inst, s: Stmt) -> None:
        n = read_uint(s.args[0].text, 1, 255)
        if n.value is None:
            self.report.warning(s.args[0].pos, f"({inst.name}): VRID {n.problem} - it must be "
                                "between 1 & 255")
            return
        inst.v["virtual_router_id"] = int(n.value)
        inst.at["virtual_router_id"] = s.args[0].pos

    def _priority(self, inst: _Inst, s: Stmt) -> None:
        n = read_uint(s.args[0].text, 1, 255)
        if n.value is None:
            self.report.warning(s.args[0].pos, f"({inst.name}) priority {n.problem}: it must "
                                "be between 1 & 255; using the default 100")
            inst.priority = 100
        else:
            inst.priority = int(n.value)

    def _advert_int(self, inst: _Inst, s: Stmt) -> None:
        d = read_decimal(s.args[0].text, 0.01, 255)
        if d.value is None or d.value <= 0:
            self.report.warning(s.args[0].pos, f"({inst.name}) advert interval {d.problem}; "
                                "it must be > 0 - ignoring")
            return
        if d.problem:
            self.report.warning(s.args[0].pos, f"({inst.name}) advert interval {d.problem}")
        inst.v["advert_int"] = d.value
        inst.at["advert_int"] = s.args[0].pos

    def _version(self, inst: _Inst, s: Stmt) -> None:
        n = read_int(s.args[0].text, 2, 3)
        if n.value is None:
            self.report.warning(s.args[0].pos, f"({inst.name}): version must be either 2 or 3")
            return
        old = inst.v.get("version")
        if old is not None and old != n.value:
            self.report.warning(s.args[0].pos, f"({inst.name}) vrrp_version {n.value} "
                                f"conflicts with configured or deduced version {old}; "
                                "ignoring.")
            return
        inst.v["version"] = int(n.value)

    def _nopreempt(self, inst: _Inst, s: Stmt) -> None:
        inst.v["nopreempt"] = True
        inst.at["nopreempt"] = s.pos

    def _preempt(self, inst: _Inst, s: Stmt) -> None:
        inst.v["nopreempt"] = False

    def _preempt_delay(self, inst: _Inst, s: Stmt) -> None:
        d = read_decimal(s.args[0].text, 0, 1000)
        if d.value is None:
            self.report.warning(s.args[0].pos, f"({inst.name}) preempt_delay {d.problem}: it "
                                "must be between 0-1000; using 0")
            inst.v["preempt_delay"] = 0.0
            return
        inst.v["preempt_delay"] = d.value
        inst.at["preempt_delay"] = s.pos

    def _authentication(self, inst: _Inst, s: Stmt) -> None:
        for a in s.block or []:
            value = a.args[0] if a.args else None
            if value is None:
                continue
            if a.name == "auth_type":
                if value.text not in ("PASS", "AH"):
                    self.report.warning(value.pos, f"({inst.name}) unknown authentication type "
                                        f"'{value.text}'")
                    continue
                if value.text == "AH":
                    self.report.error(value.pos, f"({inst.name}) auth_type AH (IPsec AH) is not "
                                      "supported by pyvrrp; only PASS is")
                    inst.failed = True
                inst.auth_type = value.text
                inst.at["auth"] = value.pos
            else:
                text = value.text
                if len(text.encode()) > 8:
                    self.report.warning(value.pos, "truncating auth_pass to 8 characters")
                    text = text.encode()[:8].decode(errors="ignore")
                inst.auth_pass = text

    def _virtual_ipaddress(self, inst: _Inst, s: Stmt) -> None:
        for seg in s.values or []:
            vip = self._vip(inst, seg)
            if vip is not None:
                inst.vips.append(vip)

    def _vip(self, inst: _Inst, seg: Segment) -> VirtualIP | None:
        """keepalived's alloc_ipaddress(): each bad option is reported and skipped."""
        report, words = self.report, seg.words
        text = words[0].text
        addr, _, plen = text.partition("/")
        if ":" in text:
            report.error(words[0].pos, f"({inst.name}) IPv6 address {text}: pyvrrp supports "
                         "IPv4 only")
            inst.failed = True
            return None
        ip = read_ip(addr)
        if not isinstance(ip, IPv4Address):
            report.warning(words[0].pos, f"VRRP parsed invalid IP {text}. skipping IP...")
            return None
        prefix = 32
        if plen:
            n = read_uint(plen, 0, 32)
            if n.value is None:
                report.warning(words[0].pos, f"invalid address prefix len {plen} for address "
                               f"{text} - using 32")
            else:
                prefix = int(n.value)
        opts: dict[str, Any] = {}
        i = 1
        while i < len(words):
            key = words[i].text
            has = i + 1 < len(words)
            if key in ("dev", "scope", "brd", "broadcast", "label", "peer", "preferred_lft"):
                if not has:
                    report.warning(words[i].pos, f"no {key} parameter specified for {text} - "
                                   "skipping the address")
                    return None
                value = words[i + 1]
                if key == "dev":
                    if "dev" in opts:
                        report.warning(words[i].pos, "cannot specify ipaddress device more "
                                       f"than once for {text} - skipping the address")
                        return None
                    self.scope.missing_interface(value.text, value, f"ip address {text}")
                    opts["dev"] = value.text
                elif key == "scope":
                    if value.text not in SCOPES:
                        report.warning(value.pos, f"invalid scope '{value.text}' specified for "
                                       f"{text} - ignoring")
                    else:
                        opts["scope"] = value.text
                elif key in ("brd", "broadcast"):
                    brd = self._broadcast(value.text, ip, prefix)
                    if brd is None:
                        report.warning(value.pos, "VRRP is trying to assign invalid broadcast "
                                       f"{value.text}. skipping VIP...")
                        return None
                    opts["brd"] = brd
                elif key == "label":
                    if len(value.text) >= 16:
                        report.warning(value.pos, f"address label {value.text} is longer than "
                                       "maximum length 15 - removing address")
                        return None
                    opts["label"] = value.text
                else:
                    report.note(words[i].pos, f"virtual_ipaddress option '{key}' is parsed, "
                                "not supported - ignored")
                i += 2
                continue
            if key in ("home", "-nodad", "mngtmpaddr", "noprefixroute", "autojoin",
                       "no_track", "use_vmac"):
                report.note(words[i].pos, f"virtual_ipaddress option '{key}' is parsed, not "
                            "supported - ignored")
            else:
                report.warning(words[i].pos, f"unknown configuration entry '{key}' for ip "
                               "address - ignoring")
            i += 1
        label, dev = opts.get("label"), opts.get("dev")
        if label is not None and not label.startswith((dev or inst.v.get("interface", "")) +
                                                       ":"):
            report.note(words[0].pos, f"label '{label}' is not of the form <dev>:<text>; the "
                        "kernel will refuse it when the address is added")
        return VirtualIP(ip, prefix, **opts)

    @staticmethod
    def _broadcast(text: str, ip: IPv4Address, prefix: int) -> IPv4Address | None:
        if text in ("+", "-"):
            if prefix > 30:
                return None
            net = IPv4Network(f"{ip}/{prefix}", strict=False)
            return net.broadcast_address if text == "+" else net.network_address
        value = read_ip(text)
        return value if isinstance(value, IPv4Address) else None

    def _src_ip(self, inst: _Inst, s: Stmt) -> None:
        ip = read_ip(s.args[0].text)
        if ip is None:
            self.report.warning(s.args[0].pos, f"VRRP instance[{inst.name}] malformed src "
                                f"address[{s.args[0].text}]. Skipping...")
            return
        if not isinstance(ip, IPv4Address):
            self.report.error(s.args[0].pos, f"({inst.name}) IPv6 source address: pyvrrp "
                              "supports IPv4 only")
            return
        inst.v["mcast_src_ip"] = ip
        if s.name == "unicast_src_ip":
            inst.unicast_configured = True
            inst.v["unicast_src_ip"] = ip

    _mcast_src_ip = _src_ip
    _unicast_src_ip = _src_ip

    def _unicast_peer(self, inst: _Inst, s: Stmt) -> None:
        inst.unicast_configured = True
        for seg in s.values or []:
            first = seg.first
            ip = read_ip(first.text)
            if ip is None:
                self.report.warning(first.pos, f"VRRP instance[{inst.name}] malformed unicast "
                                    f"peer address[{first.text}]. Skipping...")
                continue
            if not isinstance(ip, IPv4Address):
                self.report.error(first.pos, f"({inst.name}) IPv6 unicast peer: pyvrrp "
                                  "supports IPv4 only")
                continue
            rest = seg.words[1:]
            for j in range(0, len(rest), 2):
                if j + 1 >= len(rest):
                    self.report.warning(rest[j].pos, f"({inst.name}) {rest[j].text} is missing "
                                        "a value")
                    break
                if rest[j].text not in ("min_ttl", "max_ttl"):
                    self.report.warning(rest[j].pos, f"({inst.name}) unknown unicast_peer "
                                        f"option {rest[j].text}")
                    break
                self.report.note(rest[j].pos, f"unicast_peer {rest[j].text} is parsed, not "
                                 "supported - ignored")
            inst.peers.append(ip)

    def _bool_option(self, inst: _Inst, s: Stmt) -> None:
        if not s.args:
            inst.v[s.name] = True
            return
        value = read_bool(s.args[0].text)
        if value is None:
            self.report.warning(s.args[0].pos, f"({inst.name}) invalid {s.name} "
                                f"{s.args[0].text} specified")
            return
        # keepalived 2.2.7 sets skip_check_adv_addr on any valid value, even "false"
        inst.v[s.name] = True if s.name == "skip_check_adv_addr" else value

    _skip_check_adv_addr = _bool_option
    _lower_prio_no_advert = _bool_option
    _higher_prio_send_advert = _bool_option

    def _down_timer_adverts(self, inst: _Inst, s: Stmt) -> None:
        n = read_uint(s.args[0].text, 1, 100)
        if n.value is None:
            self.report.warning(s.args[0].pos, f"({inst.name}): invalid down_timer_adverts "
                                f"[1:100] {n.problem}")
            return
        inst.v["down_timer_adverts"] = int(n.value)

    def _smtp_alert(self, inst: _Inst, s: Stmt) -> None:
        value = read_bool(s.args[0].text) if s.args else True
        if value is None:
            self.report.warning(s.args[0].pos, "invalid vrrp_instance smtp_alert parameter "
                                f"{s.args[0].text}")
            return
        inst.v["smtp_alert"] = value

    # -- sync groups -----------------------------------------------------------------------

    def read_group(self, stmt: Stmt) -> None:
        if stmt.skipped:
            if len(stmt.args) != 1:
                self.report.warning(stmt.pos, "vrrp_sync_group must have a name - skipping it")
            else:
                self.report.warning(stmt.args[0].pos, f"vrrp sync group {stmt.args[0].text} "
                                    "already defined - skipping it")
            return
        name = stmt.args[0].text
        v: dict[str, Any] = {}
        notify: dict[str, str] = {}
        for s in stmt.block or []:
            if not s.kw.model:
                self.scope.keep(s, ("vrrp_sync_group", name))
            elif s.name == "group":
                if "group" in v:
                    self.report.warning(s.pos, f"group list already specified for sync group "
                                        f"{name} - skipping it")
                    continue
                v["group"] = tuple(w.text for seg in s.values or [] for w in seg.words)
                if not v["group"]:
                    self.report.warning(s.pos, f"sync group {name} has an empty group block")
            elif s.name.startswith("track_"):
                v[s.name] = track_list(self.scope, name, s)
            elif s.name in NOTIFY:
                self._notify(None, notify, s)
            elif s.name == "smtp_alert":
                value = read_bool(s.args[0].text) if s.args else True
                if value is None:
                    self.report.warning(s.args[0].pos, "invalid vrrp_group smtp_alert "
                                        f"parameter {s.args[0].text}")
                else:
                    v["smtp_alert"] = value
            elif s.name == "global_tracking":
                self.report.warning(s.pos, f"({name}) global_tracking is deprecated. Use "
                                    "track_interface/script/file on the sync group")
                v["sync_group_tracking_weight"] = True
            elif s.name == "sync_group_tracking_weight":
                v["sync_group_tracking_weight"] = True
            elif s.name == "notify_priority_changes":
                value = read_bool(s.args[0].text) if s.args else True
                if value is None:
                    self.report.warning(s.args[0].pos, f"({name}) invalid value "
                                        f"'{s.args[0].text}' for sync group "
                                        "notify_priority_changes specified")
                else:
                    v["notify_priority_changes"] = value
        v["notify"] = Notify(**{NOTIFY[k]: c for k, c in notify.items()})
        self.groups.append((stmt, VrrpSyncGroup(name=name, pos=stmt.args[0].pos, **v)))

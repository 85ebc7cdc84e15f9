"""Completing vrrp_instances and sync groups after the whole file is read, as keepalived
2.2.7's vrrp_complete_init() does: chk_min_cfg(), the sync groups, vrrp_complete_instance()
(defaults, strict mode, the fallbacks that warn) and check_vrid_conflicts().
"""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address
from typing import TYPE_CHECKING

from pyvrrp.config.keepalived import Scope, default_weight
from pyvrrp.config.model import GlobalDefs, Notify, Track, VrrpInstance, VrrpSyncGroup
from pyvrrp.config.parser import Stmt
from pyvrrp.config.report import Report

if TYPE_CHECKING:
    from pyvrrp.config.kinstance import _Inst

NOTIFY = {"notify_master": "master", "notify_backup": "backup", "notify_fault": "fault",
          "notify_stop": "stop", "notify": "any", "notify_master_rx_lower_pri":
          "master_rx_lower_pri"}
MAX_VIPS = 255  # the advert's address count is 8 bits; keepalived moves the rest to eVIPs


class Completion:
    """The second half of Instances (kinstance.py): what happens after reading."""

    scope: Scope
    report: Report
    gd: GlobalDefs
    items: list[_Inst]
    groups: list[tuple[Stmt, VrrpSyncGroup]]


    def complete(self) -> tuple[list[VrrpInstance], list[VrrpSyncGroup]]:
        ok = [i for i in self.items if self._min_cfg(i)]
        groups, member = self._groups(ok)
        done = [vi for i in ok if (vi := self._complete(i, member.get(i.name))) is not None]
        self._vrid_conflicts(done, {i.name: i for i in ok})
        return done, groups

    def _min_cfg(self, inst: _Inst) -> bool:
        """chk_min_cfg(): without these keepalived stops the VRRP process."""
        if inst.failed or inst.dropped & {"virtual_router_id", "interface"}:
            return False  # already reported where it went wrong
        if "virtual_router_id" not in inst.v:
            self.report.error(inst.pos, f"({inst.name}) the virtual router id must be set")
            return False
        if "interface" not in inst.v:
            self.report.error(inst.pos, f"({inst.name}) no interface: keepalived calls this "
                              "'Unknown interface!' and stops")
            return False
        return True

    def _groups(self, insts: list[_Inst]
                ) -> tuple[list[VrrpSyncGroup], dict[str, VrrpSyncGroup]]:
        names = {i.name for i in insts}
        member: dict[str, VrrpSyncGroup] = {}
        out: list[VrrpSyncGroup] = []
        for stmt, g in self.groups:
            if not g.group:
                self.report.warning(g.pos, f"sync group {g.name} has no virtual router(s). "
                                    "removing")
                continue
            kept = []
            where = {w.text: w.pos for s in stmt.block or [] if s.name == "group"
                     for seg in s.values or [] for w in seg.words}
            for name in g.group:
                if name not in names:
                    self.report.warning(where.get(name, g.pos), f"virtual router {name} "
                                        f"specified in sync group {g.name} doesn't exist - "
                                        "ignoring")
                elif name in member:
                    self.report.warning(where.get(name, g.pos), f"virtual router {name} cannot "
                                        f"exist in more than one sync group; ignoring {g.name}")
                else:
                    kept.append(name)
            if not kept:
                self.report.warning(g.pos, f"sync group {g.name}, no matching virtual router "
                                    "found in group declaration - removing")
                continue
            if len(kept) == 1:
                self.report.warning(g.pos, f"sync group {g.name} has only 1 virtual router(s) "
                                    "- this probably isn't what you want")
            g = replace(g, group=tuple(kept))
            for name in kept:
                member[name] = g
            self.scope.report.note(stmt.pos, f"vrrp_sync_group {g.name} is parsed and kept, "
                                   "but pyvrrp does not synchronise its instances yet")
            out.append(g)
        return out, member

    def _complete(self, inst: _Inst, group: VrrpSyncGroup | None) -> VrrpInstance | None:
        """vrrp_complete_instance(): defaults, strict mode, and the fallbacks that warn."""
        r, v, name = self.report, inst.v, inst.name
        strict = self.gd.vrrp_strict if inst.strict is None else inst.strict
        version = v.get("version") or self.gd.vrrp_version
        if not inst.vips:
            if version == 3 or strict:
                r.error(inst.pos, f"({name}) No VIP specified; at least one is required")
                return None
            r.warning(inst.pos, f"({name}) No VIP specified; at least one is sensible")
        priority = inst.priority or (255 if inst.state == "MASTER" else 100)
        state = inst.state or ("MASTER" if priority == 255 else "BACKUP")
        if strict and inst.state and (state == "MASTER") != (priority == 255):
            r.warning(inst.at.get("state", inst.pos), f"({name}) State MASTER must match being "
                      "address owner")
            state = "MASTER" if priority == 255 else "BACKUP"
        auth_type, auth_pass = inst.auth_type, inst.auth_pass
        where = inst.at.get("auth", inst.pos)
        if auth_type and strict:
            r.warning(where, f"({name}) Strict mode does not support authentication. Ignoring.")
            auth_type = None
        elif auth_type and version == 3:
            r.warning(where, f"({name}) VRRP version 3 does not support authentication. "
                      "Ignoring.")
            auth_type = None
        elif auth_type and not auth_pass:
            r.warning(where, f"({name}) Authentication specified but no password given. "
                      "Ignoring")
            auth_type = None
        if not auth_type:
            auth_pass = ""
        # keepalived 2.2.7 means to refuse unicast peers in strict mode, but tests for them
        # before it sets the unicast flag, so the binary runs them: so do we.
        if inst.unicast_configured and not inst.peers and inst.fault_no_peer:
            r.note(inst.at["unicast_fault_no_peer"], f"({name}) unicast_fault_no_peer and no "
                   "unicast peers: keepalived holds this instance in FAULT; pyvrrp runs it "
                   "with multicast")
        elif inst.unicast_configured and not inst.peers:
            r.warning(inst.pos, f"({name}) A unicast keyword has been specified without any "
                      "unicast peers. Defaulting to multicast. This usage is deprecated - "
                      "please update your configuration.")
        vips = inst.vips
        if len(vips) > MAX_VIPS:
            r.warning(inst.pos, f"({name}) Number of VIPs ({len(vips)}) exceeds maximum/space "
                      f"available in packet (max {MAX_VIPS} addresses); pyvrrp drops the rest")
            vips = vips[:MAX_VIPS]
        nopreempt = bool(v.get("nopreempt"))
        if priority == 255 and nopreempt:
            r.warning(inst.at.get("nopreempt", inst.pos), f"({name}) nopreempt is incompatible "
                      "with priority 255. resetting nopreempt")
            nopreempt = False
        delay = v.get("preempt_delay", 0.0)
        if state == "MASTER":
            if nopreempt:
                r.warning(inst.at.get("nopreempt", inst.pos), f"({name}) Warning - nopreempt "
                          "will not work with initial state MASTER - clearing")
                nopreempt = False
            if delay:
                r.warning(inst.at.get("preempt_delay", inst.pos), f"({name}) Warning - preempt "
                          "delay will not work with initial state MASTER - clearing")
                delay = 0.0
        if delay and strict:
            r.warning(inst.at["preempt_delay"], f"({name}) preempt_delay is incompatible with "
                      "strict mode - resetting")
            delay = 0.0
        if delay and nopreempt:
            r.warning(inst.at["preempt_delay"], f"({name}) preempt_delay is incompatible with "
                      "nopreempt mode - resetting")
            delay = 0.0
        if strict and v.get("down_timer_adverts", 3) != 3:
            r.warning(inst.at.get("down_timer_adverts", inst.pos), f"({name}) "
                      "down_timer_adverts is incompatible with strict mode - resetting")
            v["down_timer_adverts"] = 3
        if inst.peers and inst.mcast_dst is not None:
            r.warning(inst.pos, f"({name}) multicast destination specified with unicast - "
                      "ignoring")
        if strict:
            self._strict_defaults(inst)
        adv = self._advert(inst, version, v.get("advert_int", 1.0))
        own = [t for t in v.get("track_interface", ()) if t.name == v["interface"]]
        for t in own:
            r.warning(t.pos, f"({name}) Ignoring track_interface {t.name} since own interface")
        v["track_interface"] = tuple(t for t in v.get("track_interface", ()) if t not in own)
        if inst.xmit_base and not inst.vmac:
            r.warning(inst.at["vmac_xmit_base"], f"({name}) vmac_xmit_base is only valid with "
                      "a vmac")
        tracks = self._owner_tracks(inst, priority, group)
        unicast_src = v.get("unicast_src_ip") or (v.get("mcast_src_ip") if inst.peers else None)
        taken = ("unicast_src_ip", "advert_int", "nopreempt", "preempt_delay")
        fields = {k: x for k, x in v.items() if k not in taken}
        fields.update(tracks)
        return VrrpInstance(
            name=name, pos=inst.pos, state=state, priority=priority, advert_int=adv,
            nopreempt=nopreempt, preempt_delay=delay, auth_type=auth_type, auth_pass=auth_pass,
            virtual_ipaddress=tuple(vips), unicast_peer=tuple(inst.peers),
            unicast_src_ip=unicast_src,
            notify=Notify(**{NOTIFY[k]: c for k, c in inst.notify.items()}), **fields)

    def _strict_defaults(self, inst: _Inst) -> None:
        r, v, name = self.report, inst.v, inst.name
        if v.get("garp_lower_prio_repeat"):
            r.warning(inst.at.get("garp_lower_prio_repeat", inst.pos), f"({name}) Strict mode "
                      "requires no repeat garps. resetting")
        v["garp_lower_prio_repeat"] = 0
        if v.get("lower_prio_no_advert") is False:
            r.warning(inst.at.get("lower_prio_no_advert", inst.pos), f"({name}) Strict mode "
                      "requires no lower priority advert. resetting")
        v["lower_prio_no_advert"] = True
        if v.get("higher_prio_send_advert"):
            r.warning(inst.at.get("higher_prio_send_advert", inst.pos), f"({name}) strict "
                      "mode requires higher_prio_send_advert to be clear. resetting")
        v["higher_prio_send_advert"] = False

    def _advert(self, inst: _Inst, version: int, adv: float) -> float:
        where = inst.at.get("advert_int", inst.pos)
        if version == 2 and adv != int(adv):
            rounded = max(1, int(adv + 0.5))
            self.report.warning(where, f"({inst.name}) VRRPv2 advertisement interval "
                                f"{adv:f}s must be an integer. rounding to {rounded}s")
            return float(rounded)
        if version == 3 and adv >= 40.96:
            self.report.warning(where, f"({inst.name}) VRRPv3 advertisement interval {adv:.2f}s "
                                "is out of range. Must be less than 40.96s. Setting to 40.95s")
            return 40.95
        if version == 3 and round(adv * 100, 6) != int(round(adv * 100, 6)):
            rounded = max(0.01, int(adv * 100 + 0.5) / 100)
            self.report.warning(where, f"({inst.name}) VRRPv3 advertisement interval {adv:f}s "
                                f"must be in units of 10ms - rounding to {rounded:g}s")
            return rounded
        return adv

    def _owner_tracks(self, inst: _Inst, priority: int, group: VrrpSyncGroup | None
                      ) -> dict[str, tuple[Track, ...]]:
        """Weights do not apply to an address owner, nor inside a sync group."""
        sync = group is not None and not group.sync_group_tracking_weight
        out: dict[str, tuple[Track, ...]] = {}
        for kind in ("track_interface", "track_script", "track_file", "track_process"):
            tracks: tuple[Track, ...] = inst.v.get(kind, ())
            if not (sync or priority == 255):
                out[kind] = tracks
                continue
            why = "SYNC group" if sync else "address owner"
            kept = []
            for t in tracks:
                weight = default_weight(self.scope, kind, t)
                if not weight:
                    kept.append(t)
                elif kind == "track_interface":
                    self.report.warning(t.pos, f"({inst.name}) ignoring {t.name} tracked "
                                        f"interface {'weight ' if sync else ''}due to {why}")
                    if sync:
                        kept.append(replace(t, weight=0))
                elif kind == "track_file" and weight == 1 and t.weight is None:
                    self.report.warning(t.pos, f"({inst.name}) ignoring weight from tracked "
                                        f"file {t.name} due to {why}. specify weight 0")
                    kept.append(replace(t, weight=0))
                else:
                    self.report.warning(t.pos, f"({inst.name}) ignoring tracked "
                                        f"{kind[6:]} {t.name} with weight {weight} due to "
                                        f"{why}")
            out[kind] = tuple(kept)
        return out

    def _vrid_conflicts(self, done: list[VrrpInstance], raw: dict[str, _Inst]) -> None:
        """check_vrid_conflicts(): one VRID per interface and multicast group."""
        seen: dict[tuple[str, int, IPv4Address], str] = {}
        for vi in done:
            if vi.unicast_peer:
                continue
            group = raw[vi.name].mcast_dst or self.gd.vrrp_mcast_group4
            key = (vi.interface, vi.virtual_router_id, group)
            if key in seen:
                self.report.error(vi.pos, f"{seen[key]} and {vi.name} both use VRID "
                                  f"{vi.virtual_router_id} with IPv4 on interface "
                                  f"{vi.interface}")
            else:
                seen[key] = vi.name
        peers: dict[tuple[int, IPv4Address | str | None], list[VrrpInstance]] = {}
        for vi in done:
            if vi.unicast_peer:
                src = vi.unicast_src_ip or vi.interface
                peers.setdefault((vi.virtual_router_id, src), []).append(vi)
        for same in peers.values():
            for a_i, a in enumerate(same):
                for b in same[a_i + 1:]:
                    if (a.interface == b.interface and
                            set(a.unicast_peer) & set(b.unicast_peer)):
                        self.report.error(b.pos, f"({a.name}) duplicate VRID conflict with "
                                          f"{b.name} VRID {a.virtual_router_id}")

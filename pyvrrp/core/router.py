"""One VRRP instance as a sans-IO state machine.

`handle(event, now)` and `handle_timer(now)` return the actions to carry out, in order;
`next_deadline()` says when the router next wants `handle_timer`. Nothing here reads a
clock or touches a socket, so every behaviour is testable on a virtual clock.

Where keepalived 2.2.7 deviates from RFC 3768 and a drop-in must follow it, the code says
so (see docs/vrrp-semantics.md): a master answers a lower-priority advert with an advert
of its own unless `lower_prio_no_advert`; an owner hearing another owner drops to 254;
FAULT exists; `nopreempt` and `preempt_delay` are honoured.
"""

from __future__ import annotations

import hmac
from collections import Counter
from dataclasses import dataclass, field
from ipaddress import IPv4Address

from pyvrrp.core import actions as a
from pyvrrp.core.events import Event, PacketIn, SetFault, SetPriority, Start, Stop
from pyvrrp.core.packet import AUTH_NONE, AUTH_PASS, Advert, DecodeError, decode, pass_auth_data
from pyvrrp.core.state import TRANSITIONS, LocalProtocolError, State
from pyvrrp.core.timers import master_down_interval, skew_time

OWNER = 255


@dataclass(frozen=True)
class RouterConfig:
    """What the state machine needs of a vrrp_instance, already resolved and checked."""

    name: str
    vrid: int
    priority: int
    primary_ip: IPv4Address
    vips: tuple[IPv4Address, ...]
    initial_state: State = State.BACKUP
    version: int = 2
    interval_cs: int = 100
    preempt: bool = True
    preempt_delay: float = 0.0
    auth_type: int = AUTH_NONE
    auth_pass: str = ""
    skip_check_adv_addr: bool = False
    lower_prio_no_advert: bool = False
    higher_prio_send_advert: bool = False
    down_timer_adverts: int = 3
    garp_master_delay: float = 5.0
    garp_master_repeat: int = 5
    garp_master_refresh: float = 0.0
    garp_master_refresh_repeat: int = 1
    garp_lower_prio_repeat: int = 0
    unicast_peers: tuple[IPv4Address, ...] = ()
    check_unicast_src: bool = False
    unicast_min_ttl: int = 0
    unicast_max_ttl: int = 255


@dataclass
class _Timers:
    adver: float | None = None
    master_down: float | None = None
    garp: float | None = None
    garp_refresh: float | None = None


@dataclass
class VirtualRouter:
    cfg: RouterConfig
    state: State = State.INIT
    priority: int = 0
    master_src: IPv4Address | None = None
    master_adver_int: float = 1.0
    stats: Counter[str] = field(default_factory=Counter)
    _faults: set[str] = field(default_factory=set)
    _timers: _Timers = field(default_factory=_Timers)
    _preempt_time: float | None = None

    def __post_init__(self) -> None:
        self.priority = self.priority or self.cfg.priority
        self.master_adver_int = self.cfg.interval_cs / 100

    # -- derived values -------------------------------------------------------------------

    @property
    def interval(self) -> float:
        return self.cfg.interval_cs / 100

    def skew(self) -> float:
        return skew_time(self.priority, self.master_adver_int, self.cfg.version)

    def master_down(self) -> float:
        return master_down_interval(
            self.priority, self.master_adver_int, self.cfg.version, self.cfg.down_timer_adverts
        )

    def next_deadline(self) -> float | None:
        due = [t for t in vars(self._timers).values() if t is not None]
        return min(due) if due else None

    def advert(self, priority: int | None = None) -> Advert:
        auth_data = pass_auth_data(self.cfg.auth_pass) if self.cfg.auth_type == AUTH_PASS \
            else b"\0" * 8
        return Advert(
            version=self.cfg.version,
            vrid=self.cfg.vrid,
            priority=self.priority if priority is None else priority,
            addresses=self.cfg.vips,
            interval_cs=self.cfg.interval_cs,
            auth_type=self.cfg.auth_type if self.cfg.version == 2 else AUTH_NONE,
            auth_data=auth_data if self.cfg.version == 2 else b"",
        )

    # -- entry points ---------------------------------------------------------------------

    def handle(self, event: Event, now: float) -> list[a.Action]:
        match event:
            case Start():
                return self._start(now, event.resume_master)
            case Stop():
                return self._stop()
            case PacketIn():
                adv = self._validate(event)
                return [] if adv is None else self._advert_in(adv, event.src, now)
            case SetPriority():
                return self._set_priority(event, now)
            case SetFault():
                return self._set_fault(event, now)
        raise LocalProtocolError(f"unknown event {event!r}")

    def handle_timer(self, now: float) -> list[a.Action]:
        t = self._timers
        out: list[a.Action] = []
        if self.state is State.MASTER:
            if t.adver is not None and t.adver <= now:
                out.append(a.SendAdvert(self.advert()))
                t.adver = now + self.interval
            if t.garp is not None and t.garp <= now:
                out.append(a.SendGarp(self.cfg.garp_master_repeat))
                t.garp = None
            if t.garp_refresh is not None and t.garp_refresh <= now:
                out.append(a.SendGarp(self.cfg.garp_master_refresh_repeat))
                t.garp_refresh = now + self.cfg.garp_master_refresh
        elif self.state is State.BACKUP and t.master_down is not None and t.master_down <= now:
            # keepalived 2.2.7 adds no preempt_delay to a timeout on a silent network
            # (measured: 3.5 s at p=128 with preempt_delay 2), whatever its man page says.
            out += self._become_master(now, "master down timer expired")
        return out

    # -- transitions ----------------------------------------------------------------------

    def _go(self, new: State, reason: str) -> a.Transition:
        if (self.state, new) not in TRANSITIONS:
            raise LocalProtocolError(f"{self.cfg.name}: {self.state.value} -> {new.value}")
        old, self.state = self.state, new
        return a.Transition(old, new, reason, self.priority)

    def _start(self, now: float, resume_master: bool = False) -> list[a.Action]:
        if self.state is not State.INIT:
            raise LocalProtocolError("start twice")
        if self._faults:
            return [self._go(State.FAULT, "fault at startup: " + ", ".join(sorted(self._faults)))]
        if self.cfg.initial_state is State.MASTER and self.cfg.priority == OWNER:
            return self._become_master(now, "address owner (priority 255) starting as MASTER")
        if resume_master:
            return self._become_master(now, "reloaded while MASTER")
        return self._become_backup(now, "startup")

    def _stop(self) -> list[a.Action]:
        out: list[a.Action] = []
        if self.state is State.MASTER:
            out += [a.SendAdvert(self.advert(0)), a.RemoveVips()]
        if self.state is not State.STOP:
            out.insert(0, self._go(State.STOP, "stopping"))
        self._timers = _Timers()
        return out

    def _become_master(self, now: float, reason: str) -> list[a.Action]:
        # keepalived's order: advert first, then the VIPs, then the GARP burst.
        out: list[a.Action] = [self._go(State.MASTER, reason), a.SendAdvert(self.advert()),
                               a.AddVips(), a.SendGarp(self.cfg.garp_master_repeat)]
        self._timers = _Timers(adver=now + self.interval)
        if self.cfg.garp_master_delay > 0:
            self._timers.garp = now + self.cfg.garp_master_delay
        if self.cfg.garp_master_refresh > 0:
            self._timers.garp_refresh = now + self.cfg.garp_master_refresh
        self._preempt_time = None
        self.master_src = self.cfg.primary_ip
        return out

    def _become_backup(self, now: float, reason: str) -> list[a.Action]:
        was_master = self.state is State.MASTER
        out: list[a.Action] = [self._go(State.BACKUP, reason)]
        # From INIT too: a VIP left behind by a crash must not linger on a backup.
        if was_master or reason == "startup":
            out.append(a.RemoveVips())
        self._timers = _Timers(master_down=now + self.master_down())
        return out

    # -- receive path ---------------------------------------------------------------------

    def _drop(self, reason: str) -> None:
        self.stats["rx_drop_" + reason] += 1

    def _validate(self, pkt: PacketIn) -> Advert | None:
        cfg = self.cfg
        unicast = bool(cfg.unicast_peers)
        if pkt.src == cfg.primary_ip:
            self._drop("own")
            return None
        if pkt.dst.is_multicast == unicast:
            self._drop("mode")
            return None
        if unicast:
            if cfg.check_unicast_src and pkt.src not in cfg.unicast_peers:
                self._drop("unicast_src")
                return None
            if not cfg.unicast_min_ttl <= pkt.ttl <= cfg.unicast_max_ttl:
                self._drop("ttl")
                return None
        elif pkt.ttl != 255:
            self._drop("ttl")
            return None
        # RFC 3768 7.1 checks the version before the length and the checksum: a v3 advert
        # (whose checksum a v2 router cannot verify) counts as a version error.
        if pkt.data and pkt.data[0] >> 4 != cfg.version:
            self._drop("version")
            return None
        try:
            adv = decode(pkt.data, pkt.src, pkt.dst)
        except DecodeError as err:
            self._drop(err.reason)
            return None
        if adv.vrid != cfg.vrid:
            self._drop("vrid")
            return None
        if cfg.version == 2:
            if adv.auth_type != cfg.auth_type:
                self._drop("auth_type")
                return None
            if cfg.auth_type == AUTH_PASS and not hmac.compare_digest(
                    adv.auth_data, pass_auth_data(cfg.auth_pass)):
                self._drop("auth_pass")
                return None
            if adv.interval_cs != cfg.interval_cs:
                # RFC 3768 7.1 and keepalived: a v2 interval mismatch is dropped.
                self._drop("interval")
                return None
        skip = cfg.skip_check_adv_addr and pkt.src == self.master_src
        if not skip and adv.priority != OWNER and set(adv.addresses) != set(cfg.vips):
            self._drop("addresses")
            return None
        self.stats["rx_ok"] += 1
        return adv

    def _advert_in(self, adv: Advert, src: IPv4Address, now: float) -> list[a.Action]:
        if self.state is State.BACKUP:
            return self._backup_rx(adv, src, now)
        if self.state is State.MASTER:
            return self._master_rx(adv, src, now)
        return []

    def _backup_rx(self, adv: Advert, src: IPv4Address, now: float) -> list[a.Action]:
        if adv.priority == 0:
            self._timers.master_down = now + self.skew()
            return []
        delaying = bool(self.cfg.preempt_delay) and (
            self._preempt_time is None or self._preempt_time > now)
        if not self.cfg.preempt or adv.priority >= self.priority or delaying:
            if self.cfg.preempt_delay:
                # keepalived vrrp_state_backup: a master at least our priority stops any
                # delay; the delay starts on first seeing a lower-priority master.
                if adv.priority >= self.priority:
                    self._preempt_time = None
                elif self._preempt_time is None:
                    self._preempt_time = now + self.cfg.preempt_delay
            if self.cfg.version == 3:
                self.master_adver_int = adv.interval_cs / 100
            self.master_src = src
            self._timers.master_down = now + self.master_down()
            return []
        self.stats["rx_lower_priority_discarded"] += 1
        return []

    def _master_rx(self, adv: Advert, src: IPv4Address, now: float) -> list[a.Action]:
        out: list[a.Action] = []
        if adv.priority == 0:
            self._timers.adver = now + self.interval
            return [a.SendAdvert(self.advert())]
        if adv.priority == OWNER and self.priority == OWNER:
            self.priority = OWNER - 1
            out.append(a.Log("error", f"{self.cfg.name}: CONFIGURATION ERROR: {src} and we are "
                                      "both configured as address owner; lowering to 254"))
        if adv.priority > self.priority or (
                adv.priority == self.priority and int(src) > int(self.cfg.primary_ip)):
            if self.cfg.higher_prio_send_advert:
                out.append(a.SendAdvert(self.advert()))
            if self.cfg.version == 3:
                self.master_adver_int = adv.interval_cs / 100
            self.master_src = src
            why = f"higher priority advert ({adv.priority}) from {src}" \
                if adv.priority > self.priority else f"equal priority from higher address {src}"
            return out + self._become_backup(now, why)
        if not self.cfg.lower_prio_no_advert:
            # keepalived's default (not RFC 3768): force a new election by advertising now.
            out.append(a.SendAdvert(self.advert()))
            if self.cfg.garp_lower_prio_repeat:
                out.append(a.SendGarp(self.cfg.garp_lower_prio_repeat))
        out.append(a.MasterRxLowerPri(src, adv.priority))
        return out

    # -- tracking -------------------------------------------------------------------------

    def _set_priority(self, ev: SetPriority, now: float) -> list[a.Action]:
        new = max(1, min(OWNER - 1, ev.priority))
        if self.cfg.priority == OWNER or new == self.priority:
            return []
        self.priority = new
        out: list[a.Action] = [a.Log("info", f"({self.cfg.name}) Changing effective priority "
                                             f"to {self.priority}"
                                             + (f" ({ev.reason})" if ev.reason else ""))]
        if self.state is State.MASTER:
            # keepalived advertises the new priority at once, and re-sends its GARPs.
            out += [a.SendAdvert(self.advert()), a.SendGarp(self.cfg.garp_master_repeat)]
            self._timers.adver = now + self.interval
        return out

    def _set_fault(self, ev: SetFault, now: float) -> list[a.Action]:
        before = bool(self._faults)
        (self._faults.add if ev.faulty else self._faults.discard)(ev.source)
        after = bool(self._faults)
        if before == after or self.state in (State.INIT, State.STOP):
            return []
        if after:
            out: list[a.Action] = []
            if self.state is State.MASTER:
                out += [a.SendAdvert(self.advert(0)), a.RemoveVips()]
            self._timers = _Timers()
            return [self._go(State.FAULT, f"fault: {ev.source}"), *out]
        return self._become_backup(now, f"fault cleared: {ev.source}")

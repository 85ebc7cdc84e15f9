"""A virtual clock and a zero-latency multicast LAN for driving sans-IO VirtualRouters.

Nothing here sleeps or opens a socket: time is whatever float we pass as `now`, and a
router's timers fire exactly at the deadlines `next_deadline()` reports.

- `run_clock(router, until)` fires one router's timers up to `until`.
- `Lan` wires routers together: every `SendAdvert` one of them emits is encoded with
  `pyvrrp.core.packet.encode` and handed to the others as a `PacketIn` (TTL 255, to the
  multicast group). Loss, partitions and dead routers are simulated by not delivering.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import TypeVar

from pyvrrp.core import actions as a
from pyvrrp.core.events import Event, PacketIn, Start
from pyvrrp.core.packet import Advert, encode
from pyvrrp.core.router import RouterConfig, VirtualRouter
from pyvrrp.core.state import State

GROUP = IPv4Address("233.6.6.6")
VIP = IPv4Address("10.0.0.100")
_MAX_STEPS = 100_000
_A = TypeVar("_A")


def config(
    name: str = "VI_1",
    priority: int = 100,
    primary: str = "10.0.0.1",
    vips: Sequence[IPv4Address] = (VIP,),
    **kw: object,
) -> RouterConfig:
    """A v2, advert_int 1 instance on VRID 50 (the seed's) with keyword overrides."""
    return RouterConfig(name=name, vrid=50, priority=priority, primary_ip=IPv4Address(primary),
                        vips=tuple(vips), **kw)  # type: ignore[arg-type]


def peer_advert(priority: int, **kw: object) -> Advert:
    """An advert a peer of `config()` would send (same VRID, VIPs and interval)."""
    fields: dict[str, object] = {"version": 2, "vrid": 50, "priority": priority,
                                 "addresses": (VIP,), "interval_cs": 100}
    fields.update(kw)
    return Advert(**fields)  # type: ignore[arg-type]


def packet_in(
    adv: Advert | bytes, src: str = "10.0.0.2", ttl: int = 255, dst: IPv4Address = GROUP
) -> PacketIn:
    """A received advert (or raw VRRP payload bytes) as the receive path delivers it."""
    s = IPv4Address(src)
    data = adv if isinstance(adv, bytes) else encode(adv, s, dst)
    return PacketIn(src=s, dst=dst, ttl=ttl, data=data)


def run_clock(router: VirtualRouter, until: float) -> list[tuple[float, a.Action]]:
    """Fire `router`'s timers at each deadline up to and including `until`."""
    out: list[tuple[float, a.Action]] = []
    for _ in range(_MAX_STEPS):
        due = router.next_deadline()
        if due is None or due > until:
            return out
        acts = router.handle_timer(due)
        if not acts and router.next_deadline() == due:
            raise AssertionError(f"timer at {due} fired but neither acted nor moved")
        out += [(due, act) for act in acts]
    raise AssertionError("clock did not settle")


def of_type(records: Iterable[tuple[float, a.Action]], kind: type[_A]) -> list[tuple[float, _A]]:
    return [(t, act) for t, act in records if isinstance(act, kind)]


@dataclass(frozen=True)
class Record:
    t: float
    node: str
    action: a.Action


@dataclass
class Lan:
    """Routers on one segment, delivering each other's adverts instantly.

    At any instant all due timers fire first, then the adverts they produced are delivered
    (and the adverts those deliveries provoke, and so on), so routers whose timers expire
    together really do act together, as on a wire with a little latency.
    """

    routers: dict[str, VirtualRouter] = field(default_factory=dict)
    now: float = 0.0
    log: list[Record] = field(default_factory=list)
    dead: set[str] = field(default_factory=set)
    cut: set[frozenset[str]] = field(default_factory=set)
    muted: set[str] = field(default_factory=set)
    _queue: deque[tuple[str, Advert]] = field(default_factory=deque)

    @classmethod
    def of(cls, *cfgs: RouterConfig) -> Lan:
        return cls({c.name: VirtualRouter(c) for c in cfgs})

    def __getitem__(self, name: str) -> VirtualRouter:
        return self.routers[name]

    # -- fault injection -------------------------------------------------------------------

    def kill(self, name: str) -> None:
        """The router vanishes: it neither sends, receives nor runs its timers."""
        self.dead.add(name)

    def partition(self, x: str, y: str) -> None:
        self.cut.add(frozenset((x, y)))

    def heal(self, x: str, y: str) -> None:
        self.cut.discard(frozenset((x, y)))

    # -- driving ---------------------------------------------------------------------------

    def start(self, *names: str) -> None:
        for name in names or tuple(self.routers):
            self.inject(name, Start())

    def inject(self, name: str, event: Event) -> list[a.Action]:
        acts = self.routers[name].handle(event, self.now)
        self._record(name, acts)
        self._deliver()
        return acts

    def run_until(self, until: float) -> None:
        for _ in range(_MAX_STEPS):
            live = [(n, r) for n, r in self.routers.items() if n not in self.dead]
            dues = [d for _, r in live if (d := r.next_deadline()) is not None]
            if not dues or min(dues) > until:
                self.now = max(self.now, until)
                return
            self.now = min(dues)
            for name, r in live:
                if r.next_deadline() == self.now:
                    self._record(name, r.handle_timer(self.now))
            self._deliver()
        raise AssertionError("LAN did not settle")

    def _record(self, name: str, acts: list[a.Action]) -> None:
        for act in acts:
            self.log.append(Record(self.now, name, act))
            if isinstance(act, a.SendAdvert):
                self._queue.append((name, act.advert))

    def _deliver(self) -> None:
        for _ in range(_MAX_STEPS):
            if not self._queue:
                return
            sender, adv = self._queue.popleft()
            if sender in self.dead or sender in self.muted:
                continue
            src = self.routers[sender].cfg.primary_ip
            pkt = PacketIn(src=src, dst=GROUP, ttl=255, data=encode(adv, src, GROUP))
            for name, r in self.routers.items():
                if name == sender or name in self.dead or frozenset((name, sender)) in self.cut:
                    continue
                self._record(name, r.handle(pkt, self.now))
        raise AssertionError("advert storm: deliveries never settled")

    # -- queries ---------------------------------------------------------------------------

    def states(self) -> dict[str, State]:
        return {n: r.state for n, r in self.routers.items()}

    def transitions(self, name: str | None = None) -> list[tuple[float, str, State]]:
        return [(rec.t, rec.node, rec.action.new) for rec in self.log
                if isinstance(rec.action, a.Transition) and name in (None, rec.node)]

    def adverts(self, name: str) -> list[tuple[float, Advert]]:
        return [(rec.t, rec.action.advert) for rec in self.log
                if rec.node == name and isinstance(rec.action, a.SendAdvert)]

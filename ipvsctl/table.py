"""Pure: virtual servers + real-server health -> the IPVS table, with keepalived's quorum.

No kernel, no clock, no asyncio. `LvsState` holds what keepalived keeps per virtual server
(each real server's `alive` flag and weight, and `quorum_state_up`); events from the
health checker go in, and out come the table to program (`table()`) and the things to do
(`Script`, `Log`). The rules are keepalived 2.2.7's (ipwrapper.c `perform_svr_state`,
`update_quorum_state`, `perform_quorum_state`, `init_service_vs`, `clear_service_rs`):

Real servers
    alive: in the table at its effective weight (the configured one, or the last absolute
    weight a misc_dynamic check asked for: never a delta). Failed: out of the table, or in
    at weight 0 with `inhibit_on_failure` (the real server's, else the virtual server's).
    notify_up / notify_down run on every transition, even while the sorry server is in.

Quorum (sum = total weight of the alive real servers)
    gained when sum >= quorum + hysteresis; lost when sum == 0 or sum < quorum - hysteresis.
    In between nothing changes (hysteresis). quorum_up / quorum_down run on each change.

Sorry server (only when one is configured)
    quorum lost: every alive real server goes out too (weight 0 if inhibit), even healthy
    ones when quorum > 1, and the sorry server goes in at weight 1. While it is in, real
    server changes only move the alive flags. quorum regained: the sorry server goes out
    and every alive real server comes back. `sorry_server_inhibit`: the sorry server is
    always in the table, at weight 0 while quorum is up.

Startup (`start()`)
    quorum_state_up = sum >= quorum + hysteresis. Below it (alpha: every server starts
    failed) keepalived logs "Starting with quorum down", puts the sorry server in at once,
    and runs quorum_down. An up start runs nothing.

Shutdown (`stop()`, omega only)
    notify_down for each alive real server and, if quorum was up, quorum_down, as
    keepalived's `clear_service_rs` does with omega. The table removal is the caller's.

The table is a function of that state, so applying it twice, or after a restart, is the
same table: the reconciler's diff turns it into keepalived's ADD/EDIT/DEL_DEST sequence.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from ipvsctl.desired import dest_of, service_of
from ipvsctl.health.config import RsKey
from ipvsctl.health.state import Event, RealServerUp, WeightChange
from ipvsctl.model import Dest, RealServer, Service, Table, VirtualServer

INFO, WARNING = logging.INFO, logging.WARNING


@dataclass(frozen=True)
class Script:
    """Run this configured command line (no shell); `what` names it for the log."""

    command: str
    what: str


@dataclass(frozen=True)
class Log:
    level: int
    message: str


Action = Script | Log


@dataclass
class _Rs:
    config: RealServer
    key: RsKey
    configured: int
    alive: bool
    weight: int
    inhibit: bool


@dataclass
class _Vs:
    config: VirtualServer
    servers: list[_Rs]
    quorum_up: bool = True

    @property
    def sorry_in(self) -> bool:
        return self.config.sorry_server is not None and not self.quorum_up

    def weight_sum(self) -> int:
        return sum(rs.weight for rs in self.servers if rs.alive)


def sorry_dest(vs: VirtualServer, weight: int) -> Dest:
    """The sorry server as a dest: the port rules of a real server, weight fixed."""
    assert vs.sorry_server is not None
    ss = RealServer(vs.sorry_server.ip, vs.sorry_server.port, weight=weight,
                    lvs_method=vs.sorry_server_lvs_method)
    return dest_of(vs, ss)


class LvsState:
    """keepalived's per-virtual-server state; `health` is the checker's snapshot
    ({RsKey: (alive, weight)}); a real server missing from it (no checker) is alive."""

    def __init__(self, virtual_servers: Iterable[VirtualServer],
                 health: Mapping[RsKey, tuple[bool, int]] = {}) -> None:
        self._vss: list[_Vs] = []
        self._rs: dict[RsKey, tuple[_Vs, _Rs]] = {}
        # The last table built, and the virtual servers changed since: a health event
        # rebuilds one service's dests and shares the rest, which keeps a flip among 1k
        # services cheap here and in the reconciler's diff (identity, not value).
        self._table: Table | None = None
        self._dirty: list[_Vs] = []
        for vs in virtual_servers:
            v = _Vs(vs, [])
            for rs in vs.real_server:
                key = RsKey.of(vs, rs)
                configured = rs.weight if rs.weight is not None else vs.weight
                alive, weight = health.get(key, (True, configured))
                inhibit = (rs.inhibit_on_failure if rs.inhibit_on_failure is not None
                           else vs.inhibit_on_failure)
                r = _Rs(rs, key, configured, alive, weight, inhibit)
                v.servers.append(r)
                self._rs[key] = (v, r)
            v.quorum_up = v.weight_sum() >= vs.quorum + vs.hysteresis
            self._vss.append(v)

    # -- queries

    @property
    def virtual_servers(self) -> tuple[VirtualServer, ...]:
        return tuple(v.config for v in self._vss)

    def quorum_up(self, vs_name: str) -> bool:
        return next(v.quorum_up for v in self._vss if v.config.name == vs_name)

    def status(self) -> dict[str, dict[str, Any]]:
        """A JSON-able picture: for the status file and for humans."""
        return {v.config.name: {
            "quorum_up": v.quorum_up, "weight_sum": v.weight_sum(),
            "quorum": v.config.quorum, "hysteresis": v.config.hysteresis,
            "sorry_server_in": v.sorry_in,
            "real_servers": {str(r.key): {"alive": r.alive, "weight": r.weight}
                             for r in v.servers}} for v in self._vss}

    def table(self) -> Table:
        if self._table is None:
            self._table = Table.of([_entry(v) for v in self._vss])
        elif self._dirty:
            dests = dict(self._table.dests)
            for v in self._dirty:
                svc, ds = _entry(v)
                dests[svc.key] = {d.key: d for d in ds}
            self._table = Table(self._table.services, dests)
        self._dirty.clear()
        return self._table

    # -- transitions

    def start(self) -> list[Action]:
        """keepalived's `init_service_vs`: a virtual server that starts below quorum."""
        out: list[Action] = []
        for v in self._vss:
            if not v.quorum_up:
                out += self._quorum_lost(v, "Starting with quorum down")
        self._table = None
        return out

    def carry_quorum(self, old: LvsState) -> list[Action]:
        """After a reload: a virtual server that was there keeps its quorum state (no
        spurious scripts) and is re-judged against its new quorum; a new one starts."""
        before = {v.config.name: v.quorum_up for v in old._vss}
        out: list[Action] = []
        for v in self._vss:
            if v.config.name in before:
                v.quorum_up = before[v.config.name]
                out += self._update_quorum(v)
            elif not v.quorum_up:
                out += self._quorum_lost(v, "Starting with quorum down")
        self._table = None
        return out

    def handle(self, event: Event) -> list[Action]:
        found = self._rs.get(event.rs)
        if found is None:  # an event of a server dropped by a reload
            return []
        v, r = found
        vs = v.config
        out: list[Action] = []
        where = f"{r.key} (VS {vs.name})"
        if isinstance(event, WeightChange):
            if event.weight == r.weight:
                return []
            old, r.weight = r.weight, event.weight
            out.append(Log(INFO, f"Real server {where}: weight {old} -> {r.weight}"
                           + ("" if r.alive and not v.sorry_in else " (not in the table now)")))
        else:
            up = isinstance(event, RealServerUp)
            if up == r.alive:
                return []
            r.alive = up
            if v.sorry_in:
                change = "sorry server in: table unchanged"
            elif up:
                change = f"adding it with weight {r.weight}" if not r.inhibit \
                    else f"setting its weight back to {r.weight}"
            else:
                change = "setting its weight to 0 (inhibit_on_failure)" if r.inhibit \
                    else "removing it"
            out.append(Log(INFO if up else WARNING,
                           f"Real server {where} {'up' if up else 'down'}: {event.reason}; "
                           f"{change}"))
            script = r.config.notify_up if up else r.config.notify_down
            if script:
                out.append(Script(script, f"notify_{'up' if up else 'down'} of {where}"))
        self._dirty.append(v)
        return out + self._update_quorum(v)

    def _update_quorum(self, v: _Vs) -> list[Action]:
        vs = v.config
        total = v.weight_sum()
        if not v.quorum_up and total >= vs.quorum + vs.hysteresis:
            v.quorum_up = True
            out: list[Action] = [Log(INFO, f"Gained quorum {vs.quorum}+{vs.hysteresis}="
                                           f"{vs.quorum + vs.hysteresis} <= {total} for VS "
                                           f"{vs.name}")]
            if vs.sorry_server is not None:
                alive = [str(r.key) for r in v.servers if r.alive]
                out.append(Log(INFO, f"Removing sorry server {_sorry_name(vs)} from VS "
                                     f"{vs.name}; adding back {', '.join(alive) or 'none'}"))
            if vs.quorum_up:
                out.append(Script(vs.quorum_up, f"quorum_up of VS {vs.name}"))
            return out
        if v.quorum_up and (total == 0 or total < vs.quorum - vs.hysteresis):
            return self._quorum_lost(v, "Lost quorum")
        return []

    def _quorum_lost(self, v: _Vs, why: str) -> list[Action]:
        vs = v.config
        v.quorum_up = False
        total = v.weight_sum()
        out: list[Action] = [Log(WARNING, f"{why} {vs.quorum}-{vs.hysteresis}="
                                          f"{vs.quorum - vs.hysteresis} > {total} for VS "
                                          f"{vs.name}")]
        if vs.sorry_server is not None:
            drained = [str(r.key) for r in v.servers if r.alive]
            out.append(Log(WARNING, f"Adding sorry server {_sorry_name(vs)} to VS {vs.name}"
                           + (f"; taking out alive {', '.join(drained)}" if drained else "")))
        if vs.quorum_down:
            out.append(Script(vs.quorum_down, f"quorum_down of VS {vs.name}"))
        return out

    def stop(self) -> list[Action]:
        """omega: notify_down of alive servers, then quorum_down if quorum was up."""
        out: list[Action] = []
        for v in self._vss:
            vs = v.config
            if not vs.omega:
                continue
            for r in v.servers:
                if r.alive and r.config.notify_down:
                    out.append(Script(r.config.notify_down,
                                      f"notify_down of {r.key} (VS {vs.name}, omega)"))
            if v.quorum_up and vs.quorum_down:
                out.append(Script(vs.quorum_down, f"quorum_down of VS {vs.name} (omega)"))
        return out


def _entry(v: _Vs) -> tuple[Service, list[Dest]]:
    """One virtual server's service and dests, as its state says."""
    vs = v.config
    dests = []
    for r in v.servers:
        d = dest_of(vs, r.config)
        if r.alive and not v.sorry_in:
            dests.append(replace(d, weight=r.weight))
        elif r.inhibit:
            dests.append(replace(d, weight=0))
    if vs.sorry_server is not None and (v.sorry_in or vs.sorry_server_inhibit):
        dests.append(sorry_dest(vs, 1 if v.sorry_in else 0))
    return service_of(vs), dests


def _sorry_name(vs: VirtualServer) -> str:
    assert vs.sorry_server is not None
    ss = vs.sorry_server
    return f"[{ss.ip}]:{ss.port or vs.port}"


"""`pyvrrp run`: wire config, sockets, netlink and drivers; handle signals.

SIGTERM/SIGINT: every master sends one priority-0 advert and removes its VIPs, then exit 0.
SIGHUP: reload. A config that does not load is reported and the running one is kept; an
unchanged config moves nothing; otherwise only instances whose definition changed are
stopped and started again (instances that are the same keep their state, VIPs and tracking).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass

from pyvrrp.config.compare import same
from pyvrrp.config.loader import load_for_reload
from pyvrrp.config.model import Config, VrrpInstance
from pyvrrp.config.resolve import router_config
from pyvrrp.core.events import SetFault, Start, Stop
from pyvrrp.core.router import VirtualRouter
from pyvrrp.core.state import State
from pyvrrp.io.driver import InstanceDriver
from pyvrrp.io.garp import GarpSender
from pyvrrp.io.netlink import InterfaceError, LinkWatcher, Netlink
from pyvrrp.io.notify import Notifier
from pyvrrp.io.raw_socket import VrrpSocket
from pyvrrp.io.scripts import report_script_security
from pyvrrp.track.manager import TrackManager

log = logging.getLogger("pyvrrp")

Loader = Callable[[], tuple[Config, list[object]]]


class StartupError(RuntimeError):
    pass


@dataclass
class _Running:
    inst: VrrpInstance
    driver: InstanceDriver
    notifier: Notifier


class VrrpDaemon:
    def __init__(self, config: Config, loader: Loader | None = None) -> None:
        self.config = config
        self.loader = loader
        self.loop = asyncio.get_running_loop()
        self.netlink = Netlink()
        self.sockets: dict[str, VrrpSocket] = {}
        self.garps: dict[str, GarpSender] = {}
        self.running: dict[str, _Running] = {}
        self.tracker = TrackManager(config)
        self.watcher: LinkWatcher | None = None
        self.stop_requested = asyncio.Event()
        self._reloading = False

    # -- building -------------------------------------------------------------------------

    async def _build(self, inst: VrrpInstance, config: Config) -> _Running:
        gd = config.global_defs
        try:
            iface = await self.netlink.interface(inst.interface)
        except InterfaceError as err:
            raise StartupError(f"{inst.pos}: vrrp_instance {inst.name}: {err}") from None
        primary = inst.unicast_src_ip or inst.mcast_src_ip or iface.primary_ip
        if primary is None:
            raise StartupError(f"{inst.pos}: vrrp_instance {inst.name}: interface "
                               f"{inst.interface} has no IPv4 address to send from")
        if inst.interface not in self.sockets:
            sock = VrrpSocket(inst.interface, iface.index)
            self.sockets[inst.interface] = sock
            self.garps[inst.interface] = GarpSender(inst.interface)
            sock.start(self.loop)
        sock = self.sockets[inst.interface]
        if not inst.unicast_peer:
            sock.join(gd.vrrp_mcast_group4)
        router = VirtualRouter(router_config(inst, gd, primary))
        notifier = Notifier(gd, inst, self.loop)
        driver = InstanceDriver(
            router, inst, sock, self.garps[inst.interface], self.netlink, iface.mac,
            gd.vrrp_mcast_group4, on_transition=notifier.transition,
            on_rx_lower_pri=lambda src, prio, own: notifier.rx_lower_pri(
                src, prio, own_priority=own))
        log.info("(%s) VRID %d on %s from %s, priority %d, %s", inst.name,
                 inst.virtual_router_id, inst.interface, primary, inst.priority,
                 "unicast to " + ", ".join(map(str, inst.unicast_peer))
                 if inst.unicast_peer else f"multicast to {gd.vrrp_mcast_group4}")
        return _Running(inst, driver, notifier)

    def _link_changed(self, ifname: str, up: bool) -> None:
        # keepalived tracks each instance's own interface: link down means FAULT.
        for r in self.running.values():
            if r.inst.interface == ifname:
                r.driver.feed(SetFault(f"interface {ifname} down", not up))
        self.tracker.link_changed(ifname, up)

    async def _watch_links(self, new: list[_Running]) -> None:
        names = {r.inst.interface for r in self.running.values()} | self.tracker.tracked_links()
        if self.watcher is None:
            self.watcher = LinkWatcher(names, self._link_changed)
            links = await self.watcher.start()
        else:
            self.watcher.names |= names
            links = await self.watcher.refresh()
        for ifname in names:
            self.tracker.links[ifname] = links.get(ifname, False)
        for r in new:
            if not links.get(r.inst.interface, False):
                r.driver.feed(SetFault(f"interface {r.inst.interface} down", True))

    async def _start(self, config: Config, keep: set[str],
                     resume: frozenset[str] = frozenset()) -> None:
        """Start every instance of `config` not in `keep` (those run on untouched); those
        in `resume` were MASTER before a reload and go straight back to MASTER."""
        new = [await self._build(i, config) for i in config.vrrp_instances
               if i.name not in keep]
        for r in new:
            self.running[r.inst.name] = r
        previous = self.tracker if same(config.global_defs, self.config.global_defs) \
            and self.tracker.has_instances else None
        self.tracker = TrackManager(config, previous)
        for r in self.running.values():
            self.tracker.add_instance(r.inst, r.driver.feed)
        report_script_security(config.global_defs, [
            *self.tracker.script_specs(),
            *(s for r in self.running.values() for s in r.notifier.scripts.values())])
        await self._watch_links(new)
        self.tracker.start()
        self.config = config
        for r in new:
            r.driver.feed(Start(resume_master=r.inst.name in resume))

    async def _stop(self, names: list[str], handover: bool = False) -> set[str]:
        """Stop instances; returns those that were MASTER. With `handover` (a reload
        replaces them) no priority-0 advert is sent and the VIPs stay for the successor."""
        stopping = [self.running.pop(n) for n in names]
        masters = {r.inst.name for r in stopping if r.driver.router.state is State.MASTER}
        for r in stopping:
            if not handover:
                r.driver.feed(Stop())
        await asyncio.wait_for(asyncio.gather(*(r.driver.drain() for r in stopping)), 5)
        # notify_stop gets its chance to run before we go on (keepalived allows it 1 s).
        await asyncio.gather(*(r.notifier.close(5) for r in stopping))
        for r in stopping:
            r.driver.close()
        return masters

    # -- reload ---------------------------------------------------------------------------

    def _on_hup(self) -> None:
        if self.loader is None or self._reloading:
            return
        self._reloading = True
        self.loop.create_task(self._reload()).add_done_callback(
            lambda _t: setattr(self, "_reloading", False))

    async def _reload(self) -> None:
        assert self.loader is not None
        log.info("Reloading the configuration")
        new = load_for_reload(self.loader, log)
        if new is None:
            return
        if same(new, self.config):
            log.info("Configuration unchanged: nothing to do")
            return
        globals_same = same(new.global_defs, self.config.global_defs)
        old = {i.name: i for i in self.config.vrrp_instances}
        keep = {i.name for i in new.vrrp_instances
                if globals_same and i.name in old and same(i, old[i.name])
                and same(_tracked(new, i), _tracked(self.config, old[i.name]))}
        fresh = {i.name: i for i in new.vrrp_instances}
        changed = [n for n in self.running if n not in keep and n in fresh]
        removed = [n for n in self.running if n not in fresh]
        log.info("Reload: keeping %s; changed %s; removing %s; adding %s",
                 sorted(keep) or "none", sorted(changed) or "none", sorted(removed) or "none",
                 sorted(set(fresh) - set(old)) or "none")
        try:
            await self._stop(removed)
            was_master = await self._stop(changed, handover=True)
            for name in was_master:
                await self._drop_vips(old[name], fresh[name])
            await self._start(new, keep, frozenset(was_master))
        except (StartupError, OSError) as err:
            log.error("Reload failed: %s", err)

    async def _drop_vips(self, old: VrrpInstance, new: VrrpInstance) -> None:
        """A master handed over to its new definition keeps its VIPs, minus the dropped."""
        kept = {(v.address, v.dev or new.interface) for v in new.virtual_ipaddress}
        for vip in old.virtual_ipaddress:
            if (vip.address, vip.dev or old.interface) not in kept:
                await self.netlink.del_vip(vip, old.interface)

    # -- main -----------------------------------------------------------------------------

    async def run(self) -> int:
        await self.netlink.open()
        try:
            await self._start(self.config, set())
            for sig in (signal.SIGTERM, signal.SIGINT):
                self.loop.add_signal_handler(sig, self.stop_requested.set)
            self.loop.add_signal_handler(signal.SIGHUP, self._on_hup)
            await self.stop_requested.wait()
            log.info("Stopping")
            await self._stop(list(self.running))
            await self.tracker.aclose()
            return 0
        finally:
            self.close()

    def close(self) -> None:
        self.tracker.close()
        if self.watcher is not None:
            self.watcher.close()
        for r in self.running.values():
            r.driver.close()
        for sock in self.sockets.values():
            if not self.loop.is_closed():
                sock.stop(self.loop)
            sock.close()
        for g in self.garps.values():
            g.close()
        self.netlink.close()


def _tracked(config: Config, inst: VrrpInstance) -> tuple[object, ...]:
    """The definitions of what an instance tracks: a change there changes the instance."""
    names = {t.name for t in inst.track_script}
    files = {t.name for t in inst.track_file}
    procs = {t.name for t in inst.track_process}
    return (tuple(s for s in config.vrrp_scripts if s.name in names),
            tuple(f for f in config.track_files if f.name in files),
            tuple(p for p in config.track_processes if p.name in procs))


async def run(config: Config, loader: Loader | None = None) -> int:
    return await VrrpDaemon(config, loader).run()

"""`pyvrrp run`: wire config, sockets, netlink and drivers; handle signals.

SIGTERM/SIGINT: every master sends one priority-0 advert and removes its VIPs, then exit 0.
SIGHUP: reload is not implemented yet; the running config is kept (never dropped).
"""

from __future__ import annotations

import asyncio
import logging
import signal

from pyvrrp.config.model import Config
from pyvrrp.config.resolve import router_config
from pyvrrp.core.events import SetFault, Start, Stop
from pyvrrp.core.router import VirtualRouter
from pyvrrp.io.driver import InstanceDriver
from pyvrrp.io.garp import GarpSender
from pyvrrp.io.netlink import InterfaceError, LinkWatcher, Netlink
from pyvrrp.io.notify import Notifier
from pyvrrp.io.raw_socket import VrrpSocket
from pyvrrp.io.scripts import report_script_security
from pyvrrp.track.manager import TrackManager

log = logging.getLogger("pyvrrp")


class StartupError(RuntimeError):
    pass


async def run(config: Config) -> int:
    loop = asyncio.get_running_loop()
    netlink = Netlink()
    await netlink.open()
    sockets: dict[str, VrrpSocket] = {}
    garps: dict[str, GarpSender] = {}
    drivers: list[InstanceDriver] = []
    stop = asyncio.Event()
    watcher: LinkWatcher | None = None
    tracker = TrackManager(config)
    notifiers: list[Notifier] = []
    try:
        gd = config.global_defs
        for inst in config.vrrp_instances:
            try:
                iface = await netlink.interface(inst.interface)
            except InterfaceError as err:
                raise StartupError(f"{inst.pos}: vrrp_instance {inst.name}: {err}") from None
            primary = inst.unicast_src_ip or inst.mcast_src_ip or iface.primary_ip
            if primary is None:
                raise StartupError(f"{inst.pos}: vrrp_instance {inst.name}: interface "
                                   f"{inst.interface} has no IPv4 address to send from")
            if inst.interface not in sockets:
                sockets[inst.interface] = VrrpSocket(inst.interface, iface.index)
                garps[inst.interface] = GarpSender(inst.interface)
            sock = sockets[inst.interface]
            if not inst.unicast_peer:
                sock.join(gd.vrrp_mcast_group4)
            router = VirtualRouter(router_config(inst, gd, primary))
            notifier = Notifier(gd, inst, loop)
            notifiers.append(notifier)
            drivers.append(InstanceDriver(
                router, inst, sock, garps[inst.interface], netlink, iface.mac,
                gd.vrrp_mcast_group4, on_transition=notifier.transition,
                on_rx_lower_pri=lambda src, prio, own, n=notifier: n.rx_lower_pri(
                    src, prio, own_priority=own)))
            log.info("(%s) VRID %d on %s from %s, priority %d, %s", inst.name,
                     inst.virtual_router_id, inst.interface, primary, inst.priority,
                     "unicast to " + ", ".join(map(str, inst.unicast_peer))
                     if inst.unicast_peer else f"multicast to {gd.vrrp_mcast_group4}")
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, lambda: log.warning(
            "SIGHUP: reload is not implemented yet; keeping the running config"))
        for d in drivers:
            tracker.add_instance(d.inst, d.feed)
        report_script_security(gd, [*tracker.script_specs(),
                                    *(s for n in notifiers for s in n.scripts.values())])

        # keepalived tracks each instance's own interface: link down means FAULT.
        def link_changed(ifname: str, up: bool) -> None:
            for d in drivers:
                if d.inst.interface == ifname:
                    d.feed(SetFault(f"interface {ifname} down", not up))
            tracker.link_changed(ifname, up)

        names = {d.inst.interface for d in drivers} | tracker.tracked_links()
        watcher = LinkWatcher(names, link_changed)
        links = await watcher.start()
        for ifname in names:
            tracker.links[ifname] = links.get(ifname, False)
            if not links.get(ifname, False) and ifname in {d.inst.interface for d in drivers}:
                link_changed(ifname, False)
        tracker.start()
        for sock in sockets.values():
            sock.start(loop)
        for d in drivers:
            d.feed(Start())
        await stop.wait()
        log.info("Stopping")
        for d in drivers:
            d.feed(Stop())
        await asyncio.wait_for(asyncio.gather(*(d.drain() for d in drivers)), timeout=5)
        # notify_stop gets its chance to run before we exit (keepalived allows it 1 s).
        await asyncio.gather(*(n.close(5) for n in notifiers), tracker.aclose())
        return 0
    finally:
        tracker.close()
        if watcher is not None:
            watcher.close()
        for d in drivers:
            d.close()
        for sock in sockets.values():
            sock.stop(loop) if not loop.is_closed() else None
            sock.close()
        for g in garps.values():
            g.close()
        netlink.close()

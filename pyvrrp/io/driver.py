"""The pump between one VirtualRouter and the world.

It owns the clock (`loop.time()`), feeds events in, carries actions out, and re-arms the
router's single timer. Adverts go out synchronously, at once: they are what the peer
times. VIP changes and GARP bursts go through a per-instance queue so they keep their
order (advert, then VIPs, then GARP) without ever delaying the next advert.

Timers wake early and then wait again: asyncio sleeps in epoll_wait(), which Linux lets
overshoot a non-realtime task's timeout by 0.1 % (select_estimate_accuracy(): 3.6 ms on a
3.6 s Master_Down_Interval), on top of rounding it up to whole ms. keepalived's timerfd has
neither; the short second wait keeps us within about 1 ms of the deadline.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from ipaddress import IPv4Address

from pyvrrp.config.model import VrrpInstance
from pyvrrp.core import actions as a
from pyvrrp.core.events import Event, PacketIn
from pyvrrp.core.packet import encode
from pyvrrp.core.router import VirtualRouter
from pyvrrp.io.garp import GarpSender
from pyvrrp.io.netlink import Netlink
from pyvrrp.io.raw_socket import VrrpSocket

log = logging.getLogger("pyvrrp")

# epoll_wait() overshoots by up to 0.1 % of its timeout (capped at 100 ms) plus 1 ms of
# rounding, so a wait of d ends before the deadline if armed this much earlier.
_SLACK_RATE = 0.002
_SLACK_MIN = 0.002
_SLACK_MAX = 0.2


def _wake_time(due: float, now: float) -> float:
    """When to wake for `due`: early enough that a second, short wait can hit it."""
    early = min(_SLACK_MAX, _SLACK_MIN + (due - now) * _SLACK_RATE)
    return due - early if due - now > 2 * early else due


class InstanceDriver:
    def __init__(
        self,
        router: VirtualRouter,
        inst: VrrpInstance,
        sock: VrrpSocket,
        garp: GarpSender,
        netlink: Netlink,
        mac: bytes,
        group: IPv4Address,
        on_transition: Callable[[a.Transition], None] | None = None,
        on_rx_lower_pri: Callable[[IPv4Address, int, int], None] | None = None,
    ) -> None:
        self.router = router
        self.inst = inst
        self.sock = sock
        self.garp = garp
        self.netlink = netlink
        self.mac = mac
        self.group = group
        self.on_transition = on_transition
        self.on_rx_lower_pri = on_rx_lower_pri
        self.loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._due: float | None = None  # the router's deadline that _timer serves
        self._jobs: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
        self._worker = self.loop.create_task(self._work(), name=f"{inst.name}-io")
        sock.receivers[router.cfg.vrid] = self._packet

    @property
    def name(self) -> str:
        return self.router.cfg.name

    def feed(self, event: Event) -> None:
        self._execute(self.router.handle(event, self.loop.time()))
        self._rearm()

    def _packet(self, src: IPv4Address, dst: IPv4Address, ttl: int, data: bytes) -> None:
        self.feed(PacketIn(src, dst, ttl, data))

    def _on_timer(self) -> None:
        self._timer = None
        now = self.loop.time()
        if self._due is not None and now < self._due:
            # The early wake-up: now wait the (short) rest, accurately.
            self._timer = self.loop.call_at(_wake_time(self._due, now), self._on_timer)
            return
        self._execute(self.router.handle_timer(now))
        self._rearm()

    def _rearm(self) -> None:
        due = self.router.next_deadline()
        if self._timer is not None and due != self._due:
            self._timer.cancel()
            self._timer = None
        self._due = due
        if due is not None and self._timer is None:
            self._timer = self.loop.call_at(_wake_time(due, self.loop.time()), self._on_timer)

    def _execute(self, acts: list[a.Action]) -> None:
        for act in acts:
            match act:
                case a.SendAdvert():
                    self._send(act)
                case a.AddVips():
                    self._jobs.put_nowait(("add", 0))
                case a.RemoveVips():
                    self._jobs.put_nowait(("remove", 0))
                case a.SendGarp():
                    self._jobs.put_nowait(("garp", act.count))
                case a.Transition():
                    log.info("(%s) Entering %s STATE (%s), priority %d",
                             self.name, act.new.value, act.reason, act.priority)
                    if self.on_transition is not None:
                        self.on_transition(act)
                case a.MasterRxLowerPri():
                    log.info("(%s) received lower priority (%d) advert from %s",
                             self.name, act.priority, act.src)
                    if self.on_rx_lower_pri is not None:
                        self.on_rx_lower_pri(act.src, act.priority, self.router.priority)
                case a.Log():
                    log.log(logging.getLevelName(act.level.upper()), "%s", act.message)

    def _send(self, act: a.SendAdvert) -> None:
        cfg = self.router.cfg
        dsts = cfg.unicast_peers or (self.group,)
        for dst in dsts:
            payload = encode(act.advert, cfg.primary_ip, dst)
            self.sock.send(payload, cfg.primary_ip, dst)

    async def _work(self) -> None:
        while True:
            job, count = await self._jobs.get()
            try:
                if job == "add":
                    for vip in self.inst.virtual_ipaddress:
                        await self.netlink.add_vip(vip, self.inst.interface)
                    log.info("(%s) VIPs added: %s", self.name,
                             ", ".join(str(v.address) for v in self.inst.virtual_ipaddress))
                elif job == "remove":
                    removed = [v for v in self.inst.virtual_ipaddress
                               if await self.netlink.del_vip(v, self.inst.interface)]
                    if removed:
                        log.info("(%s) VIPs removed: %s", self.name,
                                 ", ".join(str(v.address) for v in removed))
                elif job == "garp":
                    self.garp.send(self.mac, list(self.router.cfg.vips), count)
            except Exception:  # noqa: BLE001 - one failed VIP change must not stop the speaker
                log.exception("(%s) %s failed", self.name, job)
            finally:
                self._jobs.task_done()

    async def drain(self) -> None:
        """Wait until every queued VIP/GARP job is done (used at shutdown)."""
        await self._jobs.join()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._worker.cancel()
        self.sock.receivers.pop(self.router.cfg.vrid, None)

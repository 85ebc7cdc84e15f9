"""Addresses and links through netlink (pyroute2's asyncio API)."""

from __future__ import annotations

import asyncio
import errno
import logging
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address

from pyroute2 import AsyncIPRoute
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl import RTMGRP_LINK

from pyvrrp.config.model import VirtualIP

log = logging.getLogger("pyvrrp.netlink")

IFA_F_SECONDARY = 0x01
SCOPES = {"global": 0, "site": 200, "link": 253, "host": 254, "nowhere": 255}


@dataclass(frozen=True)
class Interface:
    name: str
    index: int
    mac: bytes
    primary_ip: IPv4Address | None


class InterfaceError(RuntimeError):
    pass


class Netlink:
    """One rtnetlink socket for the daemon's lifetime."""

    def __init__(self) -> None:
        self._ipr: AsyncIPRoute | None = None

    async def open(self) -> None:
        self._ipr = AsyncIPRoute()
        await self._ipr.setup_endpoint()

    def close(self) -> None:
        if self._ipr is not None:
            self._ipr.close()
            self._ipr = None

    @property
    def ipr(self) -> AsyncIPRoute:
        if self._ipr is None:
            raise RuntimeError("netlink socket not open")
        return self._ipr

    async def index(self, ifname: str) -> int:
        found = await self.ipr.link_lookup(ifname=ifname)
        if not found:
            raise InterfaceError(f"interface '{ifname}' does not exist")
        return int(found[0])

    async def interface(self, ifname: str) -> Interface:
        index = await self.index(ifname)
        link = [msg async for msg in await self.ipr.get_links(index)][0]
        mac = bytes.fromhex(link.get("IFLA_ADDRESS").replace(":", ""))
        primary = None
        async for msg in await self.ipr.get_addr(family=2, index=index):
            if not msg["flags"] & IFA_F_SECONDARY:
                primary = IPv4Address(msg.get("IFA_ADDRESS"))
                break
        return Interface(ifname, index, mac, primary)

    async def add_vip(self, vip: VirtualIP, default_dev: str) -> None:
        dev = vip.dev or default_dev
        kwargs: dict[str, object] = {
            "index": await self.index(dev), "address": str(vip.address),
            "prefixlen": vip.prefixlen, "scope": SCOPES[vip.scope],
        }
        if vip.label:
            kwargs["label"] = vip.label
        if vip.brd is not None:
            kwargs["broadcast"] = str(vip.brd)
        try:
            await self.ipr.addr("add", **kwargs)
        except NetlinkError as err:
            if err.code != errno.EEXIST:
                raise
            log.debug("VIP %s already on %s", vip.address, dev)

    async def del_vip(self, vip: VirtualIP, default_dev: str) -> bool:
        """Remove a VIP; False when it was not there."""
        dev = vip.dev or default_dev
        try:
            await self.ipr.addr("del", index=await self.index(dev), address=str(vip.address),
                                prefixlen=vip.prefixlen)
        except NetlinkError as err:
            if err.code in (errno.EADDRNOTAVAIL, errno.ENODEV):
                return False
            raise
        return True


def _link_up(msg: object) -> bool:
    # UNKNOWN is what drivers without carrier reporting say (dummy, tun): treat it as up.
    return msg.get("IFLA_OPERSTATE") in ("UP", "UNKNOWN")  # type: ignore[attr-defined]


class LinkWatcher:
    """Reports link up/down of named interfaces as the kernel announces it (RTMGRP_LINK)."""

    def __init__(self, names: set[str], on_change: Callable[[str, bool], None]) -> None:
        self.names = names
        self.on_change = on_change
        self.state: dict[str, bool] = {}
        self._ipr: AsyncIPRoute | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> dict[str, bool]:
        """Subscribe, then read the current state (so no change falls between the two)."""
        self._ipr = AsyncIPRoute()
        await self._ipr.bind(groups=RTMGRP_LINK)
        await self.refresh()
        self._task = asyncio.get_running_loop().create_task(self._listen(), name="link-watch")
        return dict(self.state)

    async def refresh(self) -> dict[str, bool]:
        """Read the state of every watched link (after `names` grew on a reload)."""
        async with AsyncIPRoute() as query:
            async for msg in await query.get_links():
                name = msg.get("IFLA_IFNAME")
                if name in self.names:
                    self.state[name] = _link_up(msg)
        return dict(self.state)

    async def _listen(self) -> None:
        assert self._ipr is not None
        while True:
            async for msg in self._ipr.get():
                name = msg.get("IFLA_IFNAME")
                if name not in self.names:
                    continue
                up = _link_up(msg) and msg.get("event") == "RTM_NEWLINK"
                if self.state.get(name) != up:
                    self.state[name] = up
                    log.info("interface %s is %s", name, "up" if up else "down")
                    self.on_change(name, up)

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._ipr is not None:
            self._ipr.close()

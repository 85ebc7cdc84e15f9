"""Addresses and links through netlink (pyroute2's asyncio API)."""

from __future__ import annotations

import errno
import logging
from dataclasses import dataclass
from ipaddress import IPv4Address

from pyroute2 import AsyncIPRoute
from pyroute2.netlink.exceptions import NetlinkError

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

"""The VRRP socket of one interface: raw IP protocol 112, shared by its instances.

Sends with TTL 255 and multicast loop off (we must not hear ourselves), the source chosen
per packet with IP_PKTINFO; receives whole IPv4 datagrams, so the TTL is read from the
header, and dispatches them by VRID.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections import Counter
from collections.abc import Callable
from ipaddress import IPv4Address

from pyvrrp.core.packet import VRRP_PROTO, DecodeError, parse_ipv4

log = logging.getLogger("pyvrrp.socket")

IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)
SO_BINDTODEVICE = getattr(socket, "SO_BINDTODEVICE", 25)
Receiver = Callable[[IPv4Address, IPv4Address, int, bytes], None]


class VrrpSocket:
    def __init__(self, ifname: str, ifindex: int) -> None:
        self.ifname = ifname
        self.ifindex = ifindex
        self.receivers: dict[int, Receiver] = {}
        self.stats: Counter[str] = Counter()
        self._groups: set[IPv4Address] = set()
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, VRRP_PROTO)
        s.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, ifname.encode())
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
        s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 255)
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF,
                     struct.pack("4s4si", b"\0" * 4, b"\0" * 4, ifindex))
        s.setblocking(False)
        self._sock = s

    def join(self, group: IPv4Address) -> None:
        if group in self._groups:
            return
        mreqn = struct.pack("4s4si", group.packed, b"\0" * 4, self.ifindex)
        self._sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreqn)
        self._groups.add(group)

    def set_unicast_ttl(self, ttl: int) -> None:
        self._sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.add_reader(self._sock.fileno(), self._readable)

    def stop(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.remove_reader(self._sock.fileno())

    def close(self) -> None:
        self._sock.close()

    def send(self, payload: bytes, src: IPv4Address, dst: IPv4Address) -> bool:
        pktinfo = struct.pack("i4s4s", self.ifindex, src.packed, b"\0" * 4)
        try:
            self._sock.sendmsg([payload], [(socket.IPPROTO_IP, IP_PKTINFO, pktinfo)],
                               0, (str(dst), 0))
        except OSError as err:
            self.stats["tx_error"] += 1
            if self.stats["tx_error"] in (1, 10, 100, 1000):
                log.warning("%s: sending advert to %s failed: %s", self.ifname, dst, err)
            return False
        self.stats["tx"] += 1
        return True

    def _readable(self) -> None:
        # Bounded so a flood cannot starve the timers of the event loop.
        for _ in range(64):
            try:
                data = self._sock.recv(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as err:
                log.warning("%s: receive failed: %s", self.ifname, err)
                return
            self._dispatch(data)

    def _dispatch(self, data: bytes) -> None:
        try:
            dgram = parse_ipv4(data)
        except DecodeError:
            self.stats["rx_drop_ip"] += 1
            return
        payload = dgram.payload
        if len(payload) < 2:
            self.stats["rx_drop_length"] += 1
            return
        receiver = self.receivers.get(payload[1])
        if receiver is None:
            self.stats["rx_drop_vrid"] += 1
            return
        receiver(dgram.src, dgram.dst, dgram.ttl, payload)

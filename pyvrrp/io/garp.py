"""Gratuitous ARP ("who-has VIP tell VIP", broadcast) on an AF_PACKET socket."""

from __future__ import annotations

import socket
import struct
from ipaddress import IPv4Address

ETH_P_ARP = 0x0806
BROADCAST = b"\xff" * 6


def garp_frame(mac: bytes, ip: IPv4Address) -> bytes:
    eth = BROADCAST + mac + struct.pack("!H", ETH_P_ARP)
    # htype Ethernet, ptype IPv4, hlen 6, plen 4, op 1 (request), as keepalived sends.
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + mac + ip.packed + BROADCAST + ip.packed
    return eth + arp


class GarpSender:
    def __init__(self, ifname: str) -> None:
        self.ifname = ifname
        self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
        self._sock.bind((ifname, 0))
        self._sock.setblocking(False)

    def send(self, mac: bytes, ips: list[IPv4Address], count: int) -> int:
        sent = 0
        for _ in range(count):
            for ip in ips:
                try:
                    self._sock.send(garp_frame(mac, ip))
                    sent += 1
                except (BlockingIOError, OSError):
                    pass  # a down link drops it; the next burst or refresh covers it
        return sent

    def close(self) -> None:
        self._sock.close()

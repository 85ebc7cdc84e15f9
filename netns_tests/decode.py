"""Independent decoding of captured packets with scapy's own VRRP and ARP layers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from scapy.layers.inet import IP
from scapy.layers.l2 import ARP, Ether
from scapy.layers.vrrp import VRRP
from scapy.packet import Packet


@dataclass(frozen=True)
class Advert:
    time: float
    src: str
    mac: str
    vrid: int
    priority: int
    ttl: int
    vrrp: VRRP
    checksum_ok: bool

    @property
    def addrs(self) -> list[str]:
        return [str(a) for a in self.vrrp.addrlist]

    @property
    def advert_int(self) -> int:
        return int(self.vrrp.adv)


class Garp(NamedTuple):
    time: float
    mac: str
    ip: str


def _vrrp_checksum_ok(layer: VRRP) -> bool:
    rebuilt = layer.copy()
    rebuilt.remove_payload()  # trailing Ethernet padding is not part of the message
    rebuilt.chksum = None
    return bool(VRRP(bytes(rebuilt)).chksum == layer.chksum)


def vrrp_adverts(packets: Sequence[Packet]) -> list[Advert]:
    """VRRPv2 adverts (scapy's VRRP layer; VRRPv3 packets are skipped)."""
    out = []
    for pkt in packets:
        if VRRP not in pkt or IP not in pkt:
            continue
        v = pkt[VRRP]
        out.append(
            Advert(
                time=float(pkt.time),
                src=pkt[IP].src,
                mac=pkt[Ether].src if Ether in pkt else "",
                vrid=int(v.vrid),
                priority=int(v.priority),
                ttl=int(pkt[IP].ttl),
                vrrp=v,
                checksum_ok=_vrrp_checksum_ok(v),
            )
        )
    return out


def garps(packets: Sequence[Packet]) -> list[Garp]:
    """Gratuitous ARPs (sender IP == target IP), requests or replies."""
    return [
        Garp(float(p.time), p[ARP].hwsrc, p[ARP].psrc)
        for p in packets
        if ARP in p and p[ARP].psrc == p[ARP].pdst
    ]

"""Inputs to a virtual router (besides the passage of time)."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address


@dataclass(frozen=True)
class Start:
    """`resume_master`: a reload replaced this instance while it was MASTER; like
    keepalived's reload_master, it goes straight back to MASTER instead of waiting."""

    resume_master: bool = False


@dataclass(frozen=True)
class Stop:
    pass


@dataclass(frozen=True)
class PacketIn:
    """A VRRP IP payload as received, with the IP header fields validation needs."""

    src: IPv4Address
    dst: IPv4Address
    ttl: int
    data: bytes


@dataclass(frozen=True)
class SetPriority:
    """Tracking moved the effective priority (already clamped by the caller)."""

    priority: int
    reason: str = ""


@dataclass(frozen=True)
class SetFault:
    """A named fault source (tracked interface, weight-0 script...) went bad or recovered."""

    source: str
    faulty: bool


Event = Start | Stop | PacketIn | SetPriority | SetFault

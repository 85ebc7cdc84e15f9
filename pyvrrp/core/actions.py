"""What a virtual router asks its I/O adapters to do, in order."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address

from pyvrrp.core.packet import Advert
from pyvrrp.core.state import State


@dataclass(frozen=True)
class SendAdvert:
    advert: Advert


@dataclass(frozen=True)
class AddVips:
    pass


@dataclass(frozen=True)
class RemoveVips:
    pass


@dataclass(frozen=True)
class SendGarp:
    """A burst of gratuitous ARPs, `count` per VIP."""

    count: int


@dataclass(frozen=True)
class Transition:
    old: State
    new: State
    reason: str
    priority: int


@dataclass(frozen=True)
class MasterRxLowerPri:
    """keepalived's notify_master_rx_lower_pri hook: a master heard a lower priority."""

    src: IPv4Address
    priority: int


@dataclass(frozen=True)
class Log:
    level: str
    message: str


Action = SendAdvert | AddVips | RemoveVips | SendGarp | Transition | MasterRxLowerPri | Log

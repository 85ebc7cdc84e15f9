"""The typed configuration model both front ends (YAML, keepalived.conf) lower into.

Names follow keepalived's keywords so a keepalived user recognises every field.
Positions (`Pos`) travel with values that later checks may need to blame.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address


@dataclass(frozen=True)
class Pos:
    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True)
class VirtualIP:
    """One `virtual_ipaddress` line: `<IP>[/<MASK>] [brd IP] [dev IF] [scope S] [label L]`."""

    address: IPv4Address
    prefixlen: int = 32
    dev: str | None = None
    label: str | None = None
    scope: str = "global"
    brd: IPv4Address | None = None


@dataclass(frozen=True)
class GlobalDefs:
    router_id: str | None = None
    vrrp_mcast_group4: IPv4Address = IPv4Address("224.0.0.18")
    vrrp_version: int = 2
    vrrp_skip_check_adv_addr: bool = False
    vrrp_strict: bool = False
    vrrp_garp_master_delay: float = 5.0
    vrrp_garp_master_repeat: int = 5
    vrrp_garp_master_refresh: float = 0.0
    vrrp_garp_master_refresh_repeat: int = 1
    vrrp_garp_lower_prio_repeat: int = 0
    vrrp_min_garp: bool = False
    vrrp_lower_prio_no_advert: bool = False
    vrrp_higher_prio_send_advert: bool = False


@dataclass(frozen=True)
class VrrpInstance:
    name: str
    interface: str
    virtual_router_id: int
    pos: Pos
    state: str = "BACKUP"
    priority: int = 100
    advert_int: float = 1.0
    version: int | None = None
    nopreempt: bool = False
    preempt_delay: float = 0.0
    auth_type: str | None = None
    auth_pass: str = ""
    virtual_ipaddress: tuple[VirtualIP, ...] = ()
    mcast_src_ip: IPv4Address | None = None
    unicast_src_ip: IPv4Address | None = None
    unicast_peer: tuple[IPv4Address, ...] = ()
    skip_check_adv_addr: bool | None = None
    lower_prio_no_advert: bool | None = None
    higher_prio_send_advert: bool | None = None
    down_timer_adverts: int = 3
    garp_master_delay: float | None = None
    garp_master_repeat: int | None = None
    garp_master_refresh: float | None = None
    garp_master_refresh_repeat: int | None = None
    garp_lower_prio_repeat: int | None = None


@dataclass(frozen=True)
class Config:
    source: str
    global_defs: GlobalDefs = field(default_factory=GlobalDefs)
    vrrp_instances: tuple[VrrpInstance, ...] = ()

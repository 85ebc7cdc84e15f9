"""The typed configuration model both front ends (YAML, keepalived.conf) lower into.

Names follow keepalived's keywords so a keepalived user recognises every field.
Positions (`Pos`) travel with values that later checks may need to blame.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address

from ipvsctl.model import VirtualServer


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
class VrrpScript:
    """`vrrp_script NAME { script; interval; timeout; weight [reverse]; rise; fall; ... }`."""

    name: str
    script: str
    pos: Pos
    interval: int = 1
    timeout: int | None = None  # keepalived: unset means `interval`
    weight: int = 0
    weight_reverse: bool = False
    rise: int = 1
    fall: int = 1
    user: str | None = None
    group: str | None = None
    init_fail: bool = False


@dataclass(frozen=True)
class TrackFile:
    """Top-level `track_file NAME { file PATH; weight N [reverse]; init_file [V] [overwrite] }`."""

    name: str
    file: str
    pos: Pos
    weight: int = 1
    reverse: bool = False
    init_file: int | None = None
    init_overwrite: bool = False


@dataclass(frozen=True)
class TrackProcess:
    """`vrrp_track_process NAME { process; param_match; weight; quorum; quorum_max; delay }`."""

    name: str
    process: str
    pos: Pos
    param_match: str | None = None  # None: name only; "initial" | "partial": with args
    parameters: str = ""
    weight: int = 1
    weight_reverse: bool = False
    quorum: int = 1
    quorum_max: int | None = None
    delay: float = 0.0
    full_command: bool = False


@dataclass(frozen=True)
class Track:
    """One line of an instance's track_script / track_interface / track_file /
    track_process block: the object's name and an optional weight override."""

    name: str
    pos: Pos
    weight: int | None = None
    reverse: bool = False


@dataclass(frozen=True)
class Notify:
    """An instance's notify scripts; each is a command line, run without a shell."""

    master: str | None = None
    backup: str | None = None
    fault: str | None = None
    stop: str | None = None
    any: str | None = None  # `notify`: gets INSTANCE name state priority appended
    master_rx_lower_pri: str | None = None


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
    notification_email: tuple[str, ...] = ()
    notification_email_from: str | None = None
    smtp_server: str | None = None
    smtp_port: int = 25
    smtp_helo_name: str | None = None
    smtp_connect_timeout: float = 30.0
    smtp_alert: bool = False
    enable_script_security: bool = False
    script_user: str | None = None
    script_group: str | None = None
    notify_fifo: str | None = None
    vrrp_notify_fifo: str | None = None
    dynamic_interfaces: bool = False  # configured interfaces may be missing at start


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
    track_script: tuple[Track, ...] = ()
    track_interface: tuple[Track, ...] = ()
    track_file: tuple[Track, ...] = ()
    track_process: tuple[Track, ...] = ()
    notify: Notify = field(default_factory=Notify)
    smtp_alert: bool | None = None


@dataclass(frozen=True)
class VrrpSyncGroup:
    """`vrrp_sync_group NAME { group { I1 I2 } ... }`: instances that change state together."""

    name: str
    pos: Pos
    group: tuple[str, ...] = ()
    track_interface: tuple[Track, ...] = ()
    track_script: tuple[Track, ...] = ()
    track_file: tuple[Track, ...] = ()
    track_process: tuple[Track, ...] = ()
    notify: Notify = field(default_factory=Notify)
    smtp_alert: bool | None = None
    sync_group_tracking_weight: bool = False
    notify_priority_changes: bool | None = None


@dataclass(frozen=True)
class RawStatement:
    """A keepalived.conf statement that pyvrrp parses and keeps but does not run
    ("parsed, not supported"). `context` is where it stood: () at the top level,
    ("global_defs",), ("vrrp_instance", "VI_1"), ... `block` holds a `{ }`'s lines."""

    keyword: str
    args: tuple[str, ...] = ()
    block: tuple[RawStatement, ...] | None = None
    context: tuple[str, ...] = ()
    pos: Pos | None = None


@dataclass(frozen=True)
class Config:
    source: str
    global_defs: GlobalDefs = field(default_factory=GlobalDefs)
    vrrp_instances: tuple[VrrpInstance, ...] = ()
    vrrp_scripts: tuple[VrrpScript, ...] = ()
    track_files: tuple[TrackFile, ...] = ()
    track_processes: tuple[TrackProcess, ...] = ()
    vrrp_sync_groups: tuple[VrrpSyncGroup, ...] = ()
    unsupported: tuple[RawStatement, ...] = ()
    # the IPVS side of `virtual_server` blocks (ipvsctl's model); their health checks,
    # sorry server and quorum stay in `unsupported` until the checker exists
    virtual_servers: tuple[VirtualServer, ...] = ()

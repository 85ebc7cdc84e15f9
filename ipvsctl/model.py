"""The IPVS table model, in two layers, all frozen.

* Config layer (`VirtualServer`, `RealServer`): keepalived's `virtual_server` and
  `real_server` blocks under keepalived's keyword names. This is part of the project's
  config model: pyvrrp imports these; ipvsctl never imports pyvrrp.
* Kernel layer (`ServiceKey`, `Service`, `Dest`, `Table`): exactly what IPVS stores, so
  that a kernel dump and a desired table compare with `==`. Counters ride along with
  `compare=False`.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # health.config imports this module; the names are only for typing
    from ipvsctl.health.config import Checker

IPAddress = IPv4Address | IPv6Address

AF_INET = socket.AF_INET
AF_INET6 = socket.AF_INET6
PROTOCOLS = {"TCP": socket.IPPROTO_TCP, "UDP": socket.IPPROTO_UDP, "SCTP": 132}
PROTOCOL_NAMES = {v: k for k, v in PROTOCOLS.items()}

# Forwarding methods: keepalived's names -> IP_VS_CONN_F_* values.
FWD_METHODS = {"NAT": 0, "TUN": 2, "DR": 3}
FWD_NAMES = {0: "Masq", 1: "Local", 2: "Tunnel", 3: "Route", 4: "Bypass"}  # as ipvsadm -Ln

# Service flags (IP_VS_SVC_F_*). HASHED is kernel-internal and never compared.
F_PERSISTENT = 0x1
F_HASHED = 0x2
F_ONEPACKET = 0x4
F_SCHED1, F_SCHED2, F_SCHED3 = 0x8, 0x10, 0x20
SCHED_FLAG_KEYWORDS = {
    "flag-1": F_SCHED1, "flag-2": F_SCHED2, "flag-3": F_SCHED3,
    "sh-fallback": F_SCHED1, "sh-port": F_SCHED2,
    "mh-fallback": F_SCHED1, "mh-port": F_SCHED2,
}
SCHEDULERS = ("rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf",
              "mh", "twos")
TUN_TYPES = {"ipip": 0, "gue": 1, "gre": 2}
TUN_FLAGS = {"nocsum": 0, "csum": 1, "remcsum": 2}
WEIGHT_MAX = 2**31 - 1
V4_FULL_MASK = 0xFFFFFFFF
PERSISTENCE_DEFAULT = 360  # keepalived's IPVS_SVC_PERSISTENT_TIMEOUT


# --------------------------------------------------------------------------- config layer

@dataclass(frozen=True)
class RealServer:
    """`real_server IP [PORT] { ... }` inside a virtual_server."""

    ip: IPAddress
    port: int | None = None
    weight: int | None = None  # None: the virtual server's `weight`, else 1
    lvs_method: str | None = None  # NAT | DR | TUN; None: the virtual server's
    uthreshold: int = 0
    lthreshold: int = 0
    tun_type: str = "ipip"  # `lvs_method TUN type gue port N`
    tun_port: int = 0
    tun_flags: str = "nocsum"
    # Health (issue 6). None inherits from the virtual server (keepalived's rule).
    checkers: tuple[Checker, ...] = ()  # HTTP_GET / SSL_GET / TCP_CHECK / MISC_CHECK blocks
    notify_up: str | None = None  # a command line, run without a shell
    notify_down: str | None = None
    inhibit_on_failure: bool | None = None
    alpha: bool | None = None
    retry: int | None = None
    delay_before_retry: float | None = None
    delay_loop: float | None = None
    connect_timeout: float | None = None
    warmup: float | None = None
    virtualhost: str | None = None


@dataclass(frozen=True)
class SorryServer:
    """`sorry_server IP [PORT]`: the dest that stands in while quorum is lost."""

    ip: IPAddress
    port: int | None = None


@dataclass(frozen=True)
class FwmarkRules:
    """Ours, not keepalived's: `fwmark_rules: {vip, ports, protocol}` on a fwmark service.
    ipvsctl marks traffic to `vip` on `ports` with the service's mark in its own nftables
    table, so the seed's hand-written `iptables -t mangle ... MARK` line is not needed."""

    vip: tuple[IPAddress, ...]
    ports: tuple[int, ...]
    protocol: str = "tcp"  # tcp | udp | sctp


@dataclass(frozen=True)
class VirtualServer:
    """`virtual_server IP PORT { ... }` or `virtual_server fwmark N { ... }`."""

    ip: IPAddress | None = None
    port: int = 0
    fwmark: int | None = None
    protocol: str = "TCP"
    lvs_sched: str = "wlc"
    lvs_method: str = "NAT"
    persistence_timeout: int | None = None
    persistence_granularity: str | None = None  # v4 dotted mask, or v6 prefix length
    persistence_engine: str | None = None
    ops: bool = False
    sched_flags: tuple[str, ...] = ()  # flag-1, sh-port, ...
    ip_family: str | None = None  # inet | inet6, for fwmark services
    weight: int = 1  # default real_server weight
    real_server: tuple[RealServer, ...] = ()
    where: str = ""  # file:line:col of the block, for messages
    # Health and quorum (issue 6), keepalived's names and defaults. The check keywords are
    # defaults for real servers, which are defaults for checkers (None: not set here).
    delay_loop: float | None = None  # None: 60 s
    retry: int | None = None
    delay_before_retry: float | None = None
    connect_timeout: float | None = None  # None: 5 s
    warmup: float | None = None
    virtualhost: str | None = None
    alpha: bool = False
    omega: bool = False
    inhibit_on_failure: bool = False
    quorum: int = 1
    hysteresis: int = 0
    quorum_up: str | None = None
    quorum_down: str | None = None
    sorry_server: SorryServer | None = None
    sorry_server_lvs_method: str | None = None  # None: the virtual server's lvs_method
    sorry_server_inhibit: bool = False
    fwmark_rules: FwmarkRules | None = None  # ours: see FwmarkRules

    @property
    def name(self) -> str:
        if self.fwmark is not None:
            return f"fwmark {self.fwmark}"
        return f"{self.ip} {self.port}"


# --------------------------------------------------------------------------- kernel layer

@dataclass(frozen=True, order=True)
class ServiceKey:
    """What identifies an IPVS service: (af, protocol, addr, port) or (af, fwmark)."""

    af: int
    protocol: int = 0  # 0 for fwmark services (the kernel stores TCP; we never compare it)
    addr: str = ""  # canonical text ("" for fwmark services)
    port: int = 0
    fwmark: int = 0

    @staticmethod
    def inet(protocol: str, addr: str | IPAddress, port: int) -> ServiceKey:
        ip = ip_address(addr)
        return ServiceKey(AF_INET6 if ip.version == 6 else AF_INET, PROTOCOLS[protocol],
                          ip.compressed, port, 0)

    @staticmethod
    def mark(fwmark: int, af: int = AF_INET) -> ServiceKey:
        return ServiceKey(af, 0, "", 0, fwmark)

    def __str__(self) -> str:
        if self.fwmark:
            return f"FWM {self.fwmark}" + (" IPv6" if self.af == AF_INET6 else "")
        proto = PROTOCOL_NAMES.get(self.protocol, str(self.protocol))
        return f"{proto} {hostport(self.addr, self.port)}"


@dataclass(frozen=True)
class Stats:
    conns: int = 0
    inpkts: int = 0
    outpkts: int = 0
    inbytes: int = 0
    outbytes: int = 0
    cps: int = 0
    inpps: int = 0
    outpps: int = 0
    inbps: int = 0
    outbps: int = 0


@dataclass(frozen=True)
class Service:
    key: ServiceKey
    sched: str = "wlc"
    flags: int = 0  # without F_HASHED
    timeout: int = 0
    netmask: int = V4_FULL_MASK  # v4: the mask as a big-endian int; v6: prefix length
    pe_name: str = ""
    stats: Stats = field(default=Stats(), compare=False)


@dataclass(frozen=True)
class Dest:
    addr: str
    port: int
    af: int = AF_INET
    fwd: int = 0
    weight: int = 1
    u_thresh: int = 0
    l_thresh: int = 0
    tun_type: int = 0
    tun_port: int = 0
    tun_flags: int = 0
    active_conns: int = field(default=0, compare=False)
    inact_conns: int = field(default=0, compare=False)
    persist_conns: int = field(default=0, compare=False)
    stats: Stats = field(default=Stats(), compare=False)

    @property
    def key(self) -> tuple[str, int]:
        return (self.addr, self.port)


@dataclass(frozen=True)
class Table:
    """A whole IPVS table: services, and each service's dests keyed by (addr, port)."""

    services: Mapping[ServiceKey, Service] = field(default_factory=dict)
    dests: Mapping[ServiceKey, Mapping[tuple[str, int], Dest]] = field(default_factory=dict)

    @staticmethod
    def of(entries: Mapping[Service, tuple[Dest, ...]] | list[tuple[Service, list[Dest]]]
           ) -> Table:
        items = entries.items() if isinstance(entries, Mapping) else entries
        services: dict[ServiceKey, Service] = {}
        dests: dict[ServiceKey, dict[tuple[str, int], Dest]] = {}
        for svc, ds in items:
            services[svc.key] = svc
            dests[svc.key] = {d.key: d for d in ds}
        return Table(services, dests)

    def dests_of(self, key: ServiceKey) -> Mapping[tuple[str, int], Dest]:
        return self.dests.get(key, {})

    def dest_count(self) -> int:
        return sum(len(d) for d in self.dests.values())


def hostport(addr: str, port: int) -> str:
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"

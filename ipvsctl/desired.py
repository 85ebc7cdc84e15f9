"""Pure: config-layer virtual servers -> the kernel table they mean, with keepalived's rules.

* persistence: `persistence_timeout` sets F_PERSISTENT; `persistence_granularity` alone, or
  port 0 on an IP service, implies the 360 s default.
* `ops` (one-packet scheduling) only exists for UDP and fwmark services.
* dest ports: DR and TUN cannot remap ports, so an IP service's DR/TUN dest takes the
  service port and a fwmark service's non-NAT dest takes port 0 (what ipvsadm shows); a
  NAT dest without a port takes the service port.
* a fwmark service's family is `ip_family`, else inet6 when every real server is IPv6.
Health (issue 6) will filter real servers before this; today every real server is in.
"""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Address

from ipvsctl.model import (
    AF_INET,
    AF_INET6,
    F_ONEPACKET,
    F_PERSISTENT,
    FWD_METHODS,
    PERSISTENCE_DEFAULT,
    SCHED_FLAG_KEYWORDS,
    TUN_FLAGS,
    TUN_TYPES,
    V4_FULL_MASK,
    Dest,
    RealServer,
    Service,
    ServiceKey,
    Table,
    VirtualServer,
)


def service_key(vs: VirtualServer) -> ServiceKey:
    if vs.fwmark is not None:
        if vs.ip_family:
            af = AF_INET6 if vs.ip_family == "inet6" else AF_INET
        elif vs.real_server and all(rs.ip.version == 6 for rs in vs.real_server):
            af = AF_INET6
        else:
            af = AF_INET
        return ServiceKey.mark(vs.fwmark, af)
    assert vs.ip is not None
    return ServiceKey.inet(vs.protocol, vs.ip, vs.port)


def persistence(vs: VirtualServer) -> int | None:
    if vs.persistence_timeout is not None:
        return vs.persistence_timeout
    if vs.persistence_granularity is not None or (vs.fwmark is None and vs.port == 0):
        return PERSISTENCE_DEFAULT
    return None


def netmask(af: int, granularity: str | None) -> int:
    if granularity is None:
        return 128 if af == AF_INET6 else V4_FULL_MASK
    if af == AF_INET6:
        return int(granularity)
    return int(IPv4Address(granularity))


def service_of(vs: VirtualServer) -> Service:
    key = service_key(vs)
    flags = 0
    for name in vs.sched_flags:
        flags |= SCHED_FLAG_KEYWORDS[name]
    timeout = persistence(vs)
    if timeout is not None:
        flags |= F_PERSISTENT
    if vs.ops and (vs.fwmark is not None or vs.protocol == "UDP"):
        flags |= F_ONEPACKET
    return Service(key, vs.lvs_sched, flags, timeout or 0,
                   netmask(key.af, vs.persistence_granularity), vs.persistence_engine or "")


def dest_of(vs: VirtualServer, rs: RealServer) -> Dest:
    method = rs.lvs_method or vs.lvs_method
    fwd = FWD_METHODS[method]
    if vs.fwmark is not None:
        port = (rs.port or 0) if method == "NAT" else 0
    else:
        port = vs.port if method != "NAT" or rs.port is None else rs.port
    weight = rs.weight if rs.weight is not None else vs.weight
    af = AF_INET6 if rs.ip.version == 6 else AF_INET
    tun = fwd == FWD_METHODS["TUN"]
    return Dest(rs.ip.compressed, port, af, fwd, weight, rs.uthreshold, rs.lthreshold,
                TUN_TYPES[rs.tun_type] if tun else 0, rs.tun_port if tun else 0,
                TUN_FLAGS[rs.tun_flags] if tun else 0)


def table_from(virtual_servers: Iterable[VirtualServer]) -> Table:
    return Table.of([(service_of(vs), [dest_of(vs, rs) for rs in vs.real_server])
                     for vs in virtual_servers])

"""`ipvsctl list`: the table as `ipvsadm -Ln` prints it (same layout, same order), or JSON.

The layouts are ipvsadm 1.31's printf formats, column for column, so scripts and eyes
that read `ipvsadm -Ln` read this; the guest suite diffs the two outputs.
"""

from __future__ import annotations

import json
from ipaddress import ip_address
from typing import Any

from ipvsctl.model import (
    AF_INET6,
    F_ONEPACKET,
    F_PERSISTENT,
    F_SCHED1,
    F_SCHED2,
    F_SCHED3,
    FWD_NAMES,
    PROTOCOL_NAMES,
    Dest,
    Service,
    ServiceKey,
    Stats,
    Table,
    hostport,
)


def sort_key(key: ServiceKey) -> tuple[int, int, int, int, int]:
    """ipvsadm's order: fwmark, then family, protocol, address, port."""
    addr = int(ip_address(key.addr)) if key.addr else 0
    return (key.fwmark, key.af, key.protocol, addr, key.port)


def dest_sort_key(d: Dest) -> tuple[int, int, int]:
    return (d.af, int(ip_address(d.addr)), d.port)


def _largenum(i: int) -> str:
    if i < 100_000_000:
        return f"{i:9d}"
    for limit, div, unit in ((1_000_000_000, 1000, "K"), (100_000_000_000, 10**6, "M"),
                             (100_000_000_000_000, 10**9, "G")):
        if i < limit:
            return f"{i // div:8d}{unit}"
    return f"{i // 10**12:8d}T"


def _sched_flags(svc: Service) -> str:
    names = {"sh": ("sh-fallback", "sh-port", "flag-3"),
             "mh": ("mh-fallback", "mh-port", "flag-3")}.get(
        svc.sched, ("flag-1", "flag-2", "flag-3"))
    picked = [n for bit, n in zip((F_SCHED1, F_SCHED2, F_SCHED3), names, strict=True)
              if svc.flags & bit]
    return ",".join(picked)


def _svc_name(key: ServiceKey) -> str:
    if key.fwmark:
        return f"FWM  {key.fwmark}" + (" IPv6" if key.af == AF_INET6 else "")
    name = f"{PROTOCOL_NAMES[key.protocol]:<4} {hostport(key.addr, key.port)}"  # "SCTP x"
    return name if key.af == AF_INET6 else name[:33]


def _dest_name(key: ServiceKey, d: Dest) -> str:
    name = hostport(d.addr, d.port)
    return name if key.af == AF_INET6 else name[:28]


def _stats_cols(s: Stats, rate: bool) -> str:
    vals = (s.cps, s.inpps, s.outpps, s.inbps, s.outbps) if rate else \
        (s.conns, s.inpkts, s.outpkts, s.inbytes, s.outbytes)
    return "".join(_largenum(v) for v in vals)


def render(table: Table, version: int, size: int, mode: str = "") -> str:
    """mode: "" (ipvsadm -Ln), "stats" (--stats), "rate" (--rate)."""
    lines = [f"IP Virtual Server version {version >> 16}.{(version >> 8) & 255}."
             f"{version & 255} (size={size})"]
    if mode == "stats":
        lines += [f"{'Prot LocalAddress:Port':<33} {'Conns':>8} {'InPkts':>8} {'OutPkts':>8} "
                  f"{'InBytes':>8} {'OutBytes':>8}", "  -> RemoteAddress:Port"]
    elif mode == "rate":
        lines += [f"{'Prot LocalAddress:Port':<33} {'CPS':>8} {'InPPS':>8} {'OutPPS':>8} "
                  f"{'InBPS':>8} {'OutBPS':>8}", "  -> RemoteAddress:Port"]
    else:
        lines += ["Prot LocalAddress:Port Scheduler Flags",
                  "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn"]
    for key in sorted(table.services, key=sort_key):
        svc = table.services[key]
        name = _svc_name(key)
        if mode:
            lines.append(f"{name:<33}{_stats_cols(svc.stats, mode == 'rate')}")
        else:
            line = f"{name} {svc.sched}"
            if svc.flags & (F_SCHED1 | F_SCHED2 | F_SCHED3):
                line += f" ({_sched_flags(svc)})"
            if svc.flags & F_PERSISTENT:
                line += f" persistent {svc.timeout}"
                if key.af == AF_INET6 and svc.netmask != 128:
                    line += f" mask {svc.netmask}"
                elif key.af != AF_INET6 and svc.netmask != 0xFFFFFFFF:
                    m = svc.netmask
                    line += " mask " + ".".join(str((m >> s) & 255) for s in (24, 16, 8, 0))
                if svc.pe_name:
                    line += f" pe {svc.pe_name}"
            if svc.flags & F_ONEPACKET:
                line += " ops"
            lines.append(line)
        for d in sorted(table.dests_of(key).values(), key=dest_sort_key):
            dname = _dest_name(key, d)
            if mode == "stats":
                lines.append(f"  -> {dname:<28}{_stats_cols(d.stats, False)}")
            elif mode == "rate":
                s = d.stats
                lines.append(f"  -> {dname:<28} {s.cps:8d} {s.inpps:8d} {s.outpps:8d}"
                             f"{_largenum(s.inbps)}{_largenum(s.outbps)}")
            else:
                lines.append(f"  -> {dname:<28} {FWD_NAMES.get(d.fwd, '?'):<7} "
                             f"{d.weight:<6d} {d.active_conns:<10d} {d.inact_conns:<10d}")
    return "\n".join(lines) + "\n"


def to_json(table: Table) -> str:
    def stats(s: Stats) -> dict[str, int]:
        return dict(vars(s))

    out: list[dict[str, Any]] = []
    for key in sorted(table.services, key=sort_key):
        svc = table.services[key]
        entry: dict[str, Any] = {
            "family": "inet6" if key.af == AF_INET6 else "inet",
            "scheduler": svc.sched,
            "flags": svc.flags,
            "persistent": bool(svc.flags & F_PERSISTENT),
            "timeout": svc.timeout,
            "netmask": svc.netmask,
            "pe": svc.pe_name or None,
            "ops": bool(svc.flags & F_ONEPACKET),
            "stats": stats(svc.stats),
        }
        if key.fwmark:
            entry["fwmark"] = key.fwmark
        else:
            entry.update(protocol=PROTOCOL_NAMES[key.protocol], address=key.addr,
                         port=key.port)
        entry["destinations"] = [
            {"address": d.addr, "port": d.port,
             "family": "inet6" if d.af == AF_INET6 else "inet",
             "forward": FWD_NAMES.get(d.fwd, str(d.fwd)), "weight": d.weight,
             "uthreshold": d.u_thresh, "lthreshold": d.l_thresh,
             "active_conns": d.active_conns, "inactive_conns": d.inact_conns,
             "persistent_conns": d.persist_conns, "stats": stats(d.stats)}
            for d in sorted(table.dests_of(key).values(), key=dest_sort_key)]
        out.append(entry)
    return json.dumps({"services": out}, indent=2) + "\n"

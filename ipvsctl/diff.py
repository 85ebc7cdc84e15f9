"""Pure: desired table + actual table + what we own -> the ordered list of operations.

Rules (the reconciler and the tests rely on each):

1. Only services in `desired` or in `owned` are touched. A service someone added by hand
   (in `actual`, in neither set) is left alone, dests and all.
2. A desired service that already exists is adopted and edited in place, never deleted and
   re-added: that would drop its connections.
3. Order: add/edit services, then add dests, edit dests, delete dests, and last delete
   services. A service exists before its dests are added; new dests are in before old ones
   go, so capacity never dips; a deleted service takes its dests with it, so they get no
   ops of their own.
4. Within each group, keys are sorted, so a plan is deterministic.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass
from enum import Enum
from itertools import compress
from operator import is_, is_not
from typing import Any, TypeVar

from ipvsctl.model import (
    AF_INET6,
    F_ONEPACKET,
    F_PERSISTENT,
    PROTOCOL_NAMES,
    Dest,
    Service,
    ServiceKey,
    Table,
    hostport,
)


class Kind(Enum):
    ADD_SERVICE = "add-service"
    EDIT_SERVICE = "edit-service"
    ADD_DEST = "add-dest"
    EDIT_DEST = "edit-dest"
    DEL_DEST = "del-dest"
    DEL_SERVICE = "del-service"


@dataclass(frozen=True)
class Op:
    kind: Kind
    service: Service
    dest: Dest | None = None

    def __str__(self) -> str:
        return render(self)


K = TypeVar("K")
_MISSING: Any = object()


def changed_keys(want: Mapping[K, Any], have: Mapping[K, Any]) -> list[K]:
    """Keys whose value is not the very same object on both sides (identity only: the
    caller compares the few it gets by value), or that one side lacks.

    A table derived from another (`{**old, key: new}`) keeps its key order, so the two are
    walked in step in C (map/compress), never hashing a key: a dataclass key hashes in
    Python (~0.5 us), which over 1k services was most of a one-dest change."""
    if want is have:
        return []
    if len(want) == len(have) and all(map(is_, want, have)):
        return list(compress(want, map(is_not, want.values(), have.values())))
    return ([k for k, v in want.items() if have.get(k, _MISSING) is not v]
            + [k for k in have if k not in want])


def diff(desired: Table, actual: Table, owned: Set[ServiceKey] = frozenset()) -> list[Op]:
    svc_ops: list[Op] = []
    adds: list[Op] = []
    edits: list[Op] = []
    dels: list[Op] = []
    # Identity first, then value: only the services whose entry or dest map is not the
    # very object of `actual` are compared, and only those that differ get sorted (sorting
    # 1k dataclass keys alone costs more than a one-dest change should).
    changed = set(changed_keys(desired.services, actual.services))
    changed.update(changed_keys(desired.dests, actual.dests))
    differ = [k for k in changed if k in desired.services
              and (actual.services.get(k) != desired.services[k]
                   or actual.dests_of(k) != desired.dests_of(k))]
    for key in sorted(differ):
        want = desired.services[key]
        have = actual.services.get(key)
        want_d = desired.dests_of(key)
        if have is None:
            svc_ops.append(Op(Kind.ADD_SERVICE, want))
        elif have != want:
            svc_ops.append(Op(Kind.EDIT_SERVICE, want))
        have_d = actual.dests_of(key) if have is not None else {}
        for dk in sorted(want_d):
            if dk not in have_d:
                adds.append(Op(Kind.ADD_DEST, want, want_d[dk]))
            elif have_d[dk] != want_d[dk]:
                edits.append(Op(Kind.EDIT_DEST, want, want_d[dk]))
        dels.extend(Op(Kind.DEL_DEST, want, have_d[dk]) for dk in sorted(have_d)
                    if dk not in want_d)
    # set.difference(dict) runs in C on the hashes both already hold.
    gone_keys = owned.difference(desired.services) if isinstance(owned, (set, frozenset)) \
        else {k for k in owned if k not in desired.services}
    gone = [Op(Kind.DEL_SERVICE, actual.services[k])
            for k in sorted(k for k in gone_keys if k in actual.services)]
    return svc_ops + adds + edits + dels + gone


def summary(ops: Iterable[Op]) -> dict[str, int]:
    counts = {k.value: 0 for k in Kind}
    for op in ops:
        counts[op.kind.value] += 1
    return counts


# --------------------------------------------------------------------------- rendering

def service_arg(key: ServiceKey) -> str:
    """The service as ipvsadm names it: `-t 10.0.0.1:80`, `-f 5 -6`."""
    if key.fwmark:
        return f"-f {key.fwmark}" + (" -6" if key.af == AF_INET6 else "")
    flag = {"TCP": "-t", "UDP": "-u", "SCTP": "--sctp-service"}[PROTOCOL_NAMES[key.protocol]]
    return f"{flag} {hostport(key.addr, key.port)}"


def render(op: Op) -> str:
    """One op in `ipvsadm -R` syntax, so a plan reads like what an operator would type."""
    svc = op.service
    target = service_arg(svc.key)
    if op.kind in (Kind.ADD_SERVICE, Kind.EDIT_SERVICE):
        line = f"{'-A' if op.kind is Kind.ADD_SERVICE else '-E'} {target} -s {svc.sched}"
        sched_flags = svc.flags & ~(F_PERSISTENT | F_ONEPACKET)
        if sched_flags:
            names = [n for bit, n in ((0x8, "flag-1"), (0x10, "flag-2"), (0x20, "flag-3"))
                     if sched_flags & bit]
            line += f" -b {','.join(names)}"
        if svc.flags & F_PERSISTENT:
            line += f" -p {svc.timeout}"
            if svc.key.af == AF_INET6 and svc.netmask != 128:
                line += f" -M {svc.netmask}"
            elif svc.key.af != AF_INET6 and svc.netmask != 0xFFFFFFFF:
                m = svc.netmask
                line += " -M " + ".".join(str((m >> s) & 255) for s in (24, 16, 8, 0))
        if svc.pe_name:
            line += f" --pe {svc.pe_name}"
        if svc.flags & F_ONEPACKET:
            line += " -o"
        return line
    if op.kind is Kind.DEL_SERVICE:
        return f"-D {target}"
    d = op.dest
    assert d is not None
    real = hostport(d.addr, d.port)
    if op.kind is Kind.DEL_DEST:
        return f"-d {target} -r {real}"
    fwd = {0: "-m", 2: "-i", 3: "-g"}.get(d.fwd, "-g")
    line = f"{'-a' if op.kind is Kind.ADD_DEST else '-e'} {target} -r {real} {fwd} -w {d.weight}"
    if d.u_thresh:
        line += f" -x {d.u_thresh}"
    if d.l_thresh:
        line += f" -y {d.l_thresh}"
    if d.fwd == 2 and d.tun_type:
        line += f" --tun-type {['ipip', 'gue', 'gre'][d.tun_type]}"
        if d.tun_type == 1:
            line += f" --tun-port {d.tun_port}"
    return line

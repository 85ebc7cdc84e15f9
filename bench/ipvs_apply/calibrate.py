"""How much slower is the guest? The same two workloads, timed on the host and in the guest.

The guest is QEMU without KVM, so its milliseconds are not a host's. The one-change path
is Python (diff, encode) plus one netlink round trip, so both are measured:

* `python_s`: ipvsctl's own pure-Python work on a 1,000 x 10 table (diffs of a one-dest
  change, encoding and decoding dest messages); no kernel involved.
* `netlink_us`: one generic netlink round trip that every kernel has (CTRL_CMD_GETFAMILY
  "nlctrl": sendmsg, the kernel's doit, recv), so the host can run it without IPVS.

Each is the best of several repeats, which filters out other load on a shared machine.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable
from dataclasses import replace

from ipvsctl import codec
from ipvsctl.diff import diff
from ipvsctl.model import Table

GENL_ID_CTRL, CTRL_CMD_GETFAMILY, CTRL_ATTR_FAMILY_NAME = 0x10, 3, 2


def best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def python_workload(table: Table) -> Callable[[], None]:
    key = next(iter(table.services))
    dk, d = next(iter(table.dests_of(key).items()))
    owned = set(table.services)
    changed = Table(table.services, {**table.dests, key: {**table.dests_of(key),
                                                           dk: replace(d, weight=d.weight + 1)}})
    msgs = [codec.dest_msg(30, codec.NEW_DEST, key, x, i)
            for i, x in enumerate(table.dests_of(key).values())]
    replies = [next(codec.iter_messages(m))[3] for m in msgs]

    def run() -> None:
        for _ in range(20):
            diff(changed, table, owned)
        for _ in range(20):
            for x in table.dests_of(key).values():
                codec.dest_msg(30, codec.NEW_DEST, key, x, 1)
            for p in replies:
                codec.decode_dest(p, key.af, stats=False)

    return run


def netlink_round_trip(rounds: int = 200) -> float:
    """Seconds per CTRL_CMD_GETFAMILY round trip (the best of 5 batches)."""
    name = codec.nla(CTRL_ATTR_FAMILY_NAME, b"nlctrl\0")
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 16) as sock:
        sock.bind((0, 0))
        buf = bytearray(1 << 16)
        msg = struct.pack("=IHHIIBBH", 20 + len(name), GENL_ID_CTRL, codec.NLM_F_REQUEST, 1,
                          0, CTRL_CMD_GETFAMILY, 1, 0) + name

        def batch() -> None:
            for _ in range(rounds):
                sock.send(msg)
                sock.recv_into(buf)

        return best(batch, 5) / rounds


def calibrate(table: Table) -> dict[str, float]:
    return {"python_s": best(python_workload(table), 7), "netlink_us": netlink_round_trip() * 1e6}


def factor(guest: dict[str, float], host: dict[str, float]) -> dict[str, float]:
    """guest / host for each workload, and the smaller one, which the bench divides by:
    that over- rather than under-states a host's time."""
    py = guest["python_s"] / host["python_s"]
    nl = guest["netlink_us"] / host["netlink_us"]
    return {"python": py, "netlink": nl, "used": min(py, nl)}

"""What tracked objects do to an instance: pure rules, no I/O (keepalived 2.2.7 semantics).

- A script's result goes through rise/fall: `fall` consecutive failures make an OK script
  FAIL, `rise` consecutive successes make a FAIL script OK. Before its first result a script
  is INIT (`init_fail` starts it FAIL instead); its first result decides at once.
- Weight 0: a failing script, a down interface, a process below quorum or a non-zero
  track_file value means FAULT. A positive weight is added while the object is up; a
  negative one is added while it is down. `reverse` inverts the object's status.
- track_file: value x weight is added to the priority; below -253 it means FAULT.
- The effective priority is clamped to 1..254; an address owner (255) never moves.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

OWNER = 255
FILE_FAULT_BELOW = -253


class Status(Enum):
    INIT = "INIT"
    OK = "OK"
    FAIL = "FAIL"


@dataclass
class RiseFall:
    rise: int = 1
    fall: int = 1
    status: Status = Status.INIT
    _streak: int = 0  # consecutive results against the current status

    def result(self, ok: bool) -> bool:
        """Record one result; True when the status changed."""
        if self.status is Status.INIT:
            self.status = Status.OK if ok else Status.FAIL
            return True
        if ok == (self.status is Status.OK):
            self._streak = 0
            return False
        self._streak += 1
        if self._streak >= (self.rise if ok else self.fall):
            self.status = Status.OK if ok else Status.FAIL
            self._streak = 0
            return True
        return False


@dataclass(frozen=True)
class TrackState:
    """One tracked object as an instance sees it."""

    name: str  # e.g. "track_script check_nginx": the fault reason shown in logs
    weight: int
    reverse: bool = False
    up: bool | None = None  # None: no result yet
    value: int | None = None  # track_file only


def effective(base: int, tracks: Iterable[TrackState]) -> tuple[int, frozenset[str]]:
    """The effective priority and the set of tracked objects that put the instance in FAULT."""
    delta = 0
    faults: set[str] = set()
    for t in tracks:
        if t.value is not None:
            if t.weight == 0:
                if (t.value != 0) != t.reverse:
                    faults.add(t.name)
                continue
            contribution = t.value * t.weight * (-1 if t.reverse else 1)
            if contribution < FILE_FAULT_BELOW:
                faults.add(t.name)
            else:
                delta += contribution
            continue
        if t.up is None:
            if t.weight == 0:
                faults.add(t.name)  # keepalived holds a weight-0 INIT script out of MASTER
            continue
        up = t.up != t.reverse
        if t.weight == 0:
            if not up:
                faults.add(t.name)
        elif (t.weight > 0) == up:
            delta += t.weight
    if base == OWNER:
        return OWNER, frozenset(faults)
    return max(1, min(OWNER - 1, base + delta)), frozenset(faults)

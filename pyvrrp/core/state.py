"""Instance states and the transitions a virtual router may make.

Rules kept (RFC 3768 section 6.4, with keepalived's FAULT and STOP):

    INIT   --start, owner (255) and state MASTER-->        MASTER
    INIT   --start, otherwise-->                            BACKUP
    BACKUP --Master_Down_Timer fires-->                     MASTER
    MASTER --higher priority advert, or equal from higher address--> BACKUP
    any    --a tracked fault appears-->                     FAULT
    FAULT  --the last fault clears-->                       BACKUP
    any    --stop-->                                        STOP

A MASTER that leaves (to BACKUP, FAULT or STOP) removes its VIPs; leaving for FAULT or
STOP it first sends one priority-0 advert so a backup takes over after Skew_Time.
"""

from __future__ import annotations

from enum import Enum


class State(Enum):
    INIT = "INIT"
    BACKUP = "BACKUP"
    MASTER = "MASTER"
    FAULT = "FAULT"
    STOP = "STOP"


TRANSITIONS: frozenset[tuple[State, State]] = frozenset({
    (State.INIT, State.MASTER),
    (State.INIT, State.BACKUP),
    (State.INIT, State.FAULT),
    (State.BACKUP, State.MASTER),
    (State.MASTER, State.BACKUP),
    (State.BACKUP, State.FAULT),
    (State.MASTER, State.FAULT),
    (State.FAULT, State.BACKUP),
    (State.INIT, State.STOP),
    (State.BACKUP, State.STOP),
    (State.MASTER, State.STOP),
    (State.FAULT, State.STOP),
})


class LocalProtocolError(RuntimeError):
    """The caller drove the router in a way its rules forbid (a bug here, not the peer's)."""

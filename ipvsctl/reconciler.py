"""Apply a desired table against a kernel dump, and resync it periodically.

No flush, ever: at start the reconciler dumps the kernel and diffs, so a restart leaves
unchanged services (and their connections) alone. What it owns is what it was asked for,
plus what it added earlier: that set is kept in a small state file per network namespace,
so that a service dropped from the config is deleted even across restarts, while a
service someone added by hand (never ours) is not.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

from ipvsctl.diff import Kind, Op, diff
from ipvsctl.kernel import ApplyResult, IpvsError
from ipvsctl.model import ServiceKey, Table

log = logging.getLogger("ipvsctl")
STATE_DIR = Path("/run/ipvsctl")


class Kernel(Protocol):
    def dump(self, stats: bool = True) -> Table: ...
    def apply(self, ops: Iterable[Op]) -> ApplyResult: ...


def default_state_path(netns: str | None = None) -> Path:
    """One state file per network namespace, named by the namespace's inode."""
    ns = Path(f"/run/netns/{netns}") if netns else Path("/proc/self/ns/net")
    return STATE_DIR / f"owned-{os.stat(ns).st_ino}.json"


@dataclass(frozen=True)
class Report:
    ops: tuple[Op, ...]
    errors: tuple[IpvsError, ...]

    @property
    def ok(self) -> bool:
        return not self.errors


class Reconciler:
    def __init__(self, kernel: Kernel, state_path: Path | None = None) -> None:
        self.kernel = kernel
        self.state_path = state_path
        self.owned: set[ServiceKey] = self._load()
        self.desired: Table | None = None
        self.applied: Table | None = None  # the kernel as of our last clean apply

    def _load(self) -> set[ServiceKey]:
        if self.state_path is None or not self.state_path.exists():
            return set()
        try:
            return {ServiceKey(**k) for k in json.loads(self.state_path.read_text())}
        except (ValueError, TypeError) as err:
            log.warning("ignoring unreadable state file %s: %s", self.state_path, err)
            return set()

    def _save(self) -> None:
        if self.state_path is None:
            return
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps([asdict(k) for k in sorted(self.owned)]))
        tmp.replace(self.state_path)

    def plan(self, desired: Table, actual: Table | None = None) -> list[Op]:
        if actual is None:
            actual = self.kernel.dump(stats=False)  # counters do not take part in a diff
        return diff(desired, actual, self.owned)

    def apply(self, desired: Table, actual: Table | None = None) -> Report:
        """Make the kernel match `desired` for the services we own; return what was done."""
        return self._apply(desired, self.plan(desired, actual))

    def update(self, desired: Table) -> Report:
        """The fast path for small changes (a health flip): diff against what we last
        applied, without a dump, and send only that delta. Drift is the periodic resync's
        job. Cheapest when `desired` is derived from the last table (`{**old, key: new}`
        shares the untouched entries): then the diff never hashes a key."""
        if self.applied is None:
            return self.apply(desired)
        return self._apply(desired, diff(desired, self.applied, self.owned))

    def _apply(self, desired: Table, ops: list[Op]) -> Report:
        self.desired = desired
        result = self.kernel.apply(ops) if ops else ApplyResult(0, ())
        failed_deletes = {e.op.service.key for e in result.errors
                          if e.op is not None and e.op.kind is Kind.DEL_SERVICE}
        # Owned from now on: everything desired (adopted or added), and anything we meant
        # to delete but could not, so the next pass tries again. The file is rewritten only
        # when that set changes: a weight flip must not serialise 1k keys.
        same_services = (self.applied is not None and not failed_deletes
                         and desired.services is self.applied.services)
        owned = self.owned if same_services else \
            set(desired.services) | (self.owned & failed_deletes)
        if owned != self.owned or self.applied is None:
            self.owned = owned
            self._save()
        self.applied = desired if not result.errors else None
        for err in result.errors:
            log.error("%s", err)
        return Report(tuple(ops), result.errors)

    def resync(self) -> Report:
        """Repair what changed behind our back since the last apply, and log it."""
        if self.desired is None:
            return Report((), ())
        report = self.apply(self.desired)
        for op in report.ops:
            log.warning("resync repaired: %s (%s)", op, op.kind.value)
        return report

    async def run(self, interval: float, stop: asyncio.Event) -> None:
        """Resync every `interval` seconds until `stop` is set."""
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), interval)
            except TimeoutError:
                try:
                    self.resync()
                except IpvsError as err:
                    log.error("resync failed: %s", err)

"""The tracked objects' observers: vrrp_script runs, track_file and track_process polls.

Each observer calls `changed()` when what it reports moves; the manager then recomputes
the instances that track it. They never block the event loop: scripts run as asyncio
subprocesses, file and /proc reads are small and local.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from pathlib import Path

from pyvrrp.config.model import TrackFile, TrackProcess, VrrpScript
from pyvrrp.core.tracking import RiseFall, Status
from pyvrrp.io.scripts import ScriptRunner, ScriptSpec

log = logging.getLogger("pyvrrp.track")

POLL = 0.5  # seconds between track_file and track_process polls (keepalived uses events)


class ScriptSource:
    def __init__(self, script: VrrpScript, spec: ScriptSpec,
                 changed: Callable[[], None]) -> None:
        self.script = script
        self.spec = spec
        self.changed = changed
        self.state = RiseFall(script.rise, script.fall,
                              Status.FAIL if script.init_fail else Status.INIT)
        # keepalived: an unset timeout is the interval; past it the run counts as failed.
        self.runner = ScriptRunner(float(script.timeout or script.interval))
        self._task: asyncio.Task[None] | None = None
        self._run: asyncio.Task[None] | None = None

    @property
    def up(self) -> bool | None:
        return None if self.state.status is Status.INIT else self.state.status is Status.OK

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(),
                                                            name=f"script-{self.script.name}")

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            began = loop.time()
            if self._run is None or self._run.done():
                self._run = loop.create_task(self._once())
            else:
                log.debug("Track script %s is already running, skipping this run",
                          self.script.name)
            await asyncio.sleep(max(0.0, began + self.script.interval - loop.time()))

    async def _once(self) -> None:
        result = await self.runner.run(self.spec)
        ok = result.returncode == 0 and not result.timed_out
        if not ok:
            log.debug("Script %s %s", self.script.name, result.describe())
        if self.state.result(ok):
            log.info("Script `%s` now returning %s (%s)", self.script.name,
                     self.state.status.value, "succeeded" if ok else result.describe())
            self.changed()

    def close(self) -> None:
        for task in (self._task, self._run):
            if task is not None:
                task.cancel()

    async def aclose(self) -> None:
        self.close()
        await self.runner.close(0)


class FileSource:
    """keepalived reads the number in the file; a missing or unreadable file counts as 0."""

    def __init__(self, tf: TrackFile, changed: Callable[[], None]) -> None:
        self.tf = tf
        self.changed = changed
        self.value = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        path = Path(self.tf.file)
        if self.tf.init_file is not None and (self.tf.init_overwrite or not path.exists()):
            try:
                path.write_text(f"{self.tf.init_file}\n")
            except OSError as err:
                log.warning("track_file %s: cannot initialise %s: %s", self.tf.name, path, err)
        self.value = self._read()
        self._task = asyncio.get_running_loop().create_task(self._poll())

    def _read(self) -> int:
        try:
            words = Path(self.tf.file).read_text(errors="replace").split()
            return int(words[0]) if words else 0
        except (OSError, ValueError):
            return 0

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(POLL)
            value = self._read()
            if value != self.value:
                log.info("track_file %s: value %d -> %d", self.tf.name, self.value, value)
                self.value = value
                self.changed()

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()


_last_scan: tuple[float, list[tuple[str, list[str]]]] = (float("-inf"), [])


def _processes(now: float) -> list[tuple[str, list[str]]]:
    """(comm, argv) of every process the kernel shows us. Every track_process polls on the
    same beat, so one walk of /proc per poll serves them all."""
    global _last_scan
    if now - _last_scan[0] < POLL / 2:
        return _last_scan[1]
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        with contextlib.suppress(OSError):
            comm = Path(f"/proc/{pid}/comm").read_text().rstrip("\n")
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            found.append((comm, [a.decode(errors="replace") for a in argv if a]))
    _last_scan = (now, found)
    return found


def process_matches(tp: TrackProcess, comm: str, argv: list[str]) -> bool:
    if tp.full_command:
        if not argv or argv[0] != tp.process:
            return False
    elif comm != tp.process[:15]:  # the kernel truncates comm to 15 characters
        return False
    if not tp.parameters and tp.param_match is None:
        return True
    args = " ".join(argv[1:])
    if tp.param_match == "partial":
        return tp.parameters in args
    if tp.param_match == "initial":
        return args.startswith(tp.parameters)
    return args == tp.parameters


class ProcessSource:
    def __init__(self, tp: TrackProcess, changed: Callable[[], None]) -> None:
        self.tp = tp
        self.changed = changed
        self.count = 0
        self.up = False
        self._task: asyncio.Task[None] | None = None
        self._pending_since: float | None = None

    def _count(self) -> int:
        now = asyncio.get_running_loop().time()
        return sum(process_matches(self.tp, c, a) for c, a in _processes(now))

    def _quorate(self, n: int) -> bool:
        top = self.tp.quorum_max
        return n >= self.tp.quorum and (top is None or n <= top)

    def start(self) -> None:
        self.count = self._count()
        self.up = self._quorate(self.count)
        self._task = asyncio.get_running_loop().create_task(self._poll())

    async def _poll(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(POLL)
            self.count = self._count()
            up = self._quorate(self.count)
            if up == self.up:
                self._pending_since = None
                continue
            # `delay`: a change must last this long before it counts (keepalived's
            # fork_delay / terminate_delay), so a quick restart does not flap.
            now = loop.time()
            if self._pending_since is None:
                self._pending_since = now
            if now - self._pending_since >= self.tp.delay:
                self._pending_since = None
                self.up = up
                log.info("track_process %s: %d process(es), now %s", self.tp.name,
                         self.count, "OK" if up else "below quorum")
                self.changed()

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()

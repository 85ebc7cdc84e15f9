"""Running a script safely: the one runner behind pyvrrp's scripts (notify, vrrp_script,
track) and ipvsctl's (notify_up/down, quorum_up/down, MISC_CHECK).

No shell: the caller gives argv. Each run is its own session, from /, under a time cap:
past it the whole process group gets SIGTERM, then SIGKILL. Only the tail of the output is
kept, so a chatty script costs bounded memory. It lives in ipvsctl, the lower layer, so
both halves share it (ipvsctl never imports pyvrrp).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

KILL_GRACE = 2.0  # seconds between SIGTERM and SIGKILL of a script's process group
OUTPUT_KEEP = 4096  # bytes of a script's output kept (the tail) for the log


@dataclass
class ProcessResult:
    returncode: int | None  # None: it could not be started
    timed_out: bool = False
    output: bytes = b""  # the last OUTPUT_KEEP bytes of stdout+stderr
    output_bytes: int = 0  # how much it printed in all
    duration: float = 0.0
    error: str | None = None  # why it could not be started
    cap: float = 0.0  # the timeout it ran under

    def describe(self) -> str:
        if self.error is not None:
            return f"could not be started: {self.error}"
        if self.timed_out:
            return f"still running after {self.cap:g} s: killed its process group"
        rc = self.returncode
        if rc is not None and rc < 0:
            try:
                sig = signal.Signals(-rc).name
            except ValueError:
                sig = "?"
            return f"killed by signal {-rc} ({sig})"
        return f"exited with status {rc}"


class _Drain(asyncio.SubprocessProtocol):
    """Keeps the tail of the output, so a chatty script costs bounded memory; learns the
    exit from the child watcher, not from EOF (a background child may hold the pipe)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, keep: int) -> None:
        self.keep = keep
        self.tail = bytearray()
        self.total = 0
        self.exited: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.done: asyncio.Future[None] = loop.create_future()  # run() has finished with it
        self.transport: asyncio.SubprocessTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.SubprocessTransport)
        self.transport = transport

    def pipe_data_received(self, fd: int, data: bytes | bytearray) -> None:
        self.total += len(data)
        if len(data) >= self.keep:
            self.tail = bytearray(data[-self.keep:])
        else:
            self.tail += data
            if len(self.tail) > self.keep:
                del self.tail[:-self.keep]

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        if self.transport is not None:
            self.transport.close()


def killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        log.warning("cannot signal process group %d (%s)", pgid, signal.Signals(sig).name)


@dataclass
class ProcessRunner:
    """Runs scripts and keeps track of them, so close() can end what is left.

    Each run is its own session (setsid), so the process group id is the pid and one
    killpg() reaches the script and every child that did not leave the session.
    """

    timeout: float  # the cap: past it the process group gets SIGTERM, then SIGKILL
    kill_grace: float = KILL_GRACE
    keep_output: int = OUTPUT_KEEP
    _running: dict[int, _Drain] = field(default_factory=dict, init=False)  # pgid -> its run
    _lingering: set[_Drain] = field(default_factory=set, init=False)  # a child holds the pipe

    async def exec(self, argv: Sequence[str], ids: Mapping[str, Any] | None = None,
                   timeout: float | None = None) -> ProcessResult:
        """Run `argv` (no shell) in its own session from /, as the user and groups in
        `ids` (subprocess keywords), under the cap; never raises for the script's sake."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        cap = self.timeout if timeout is None else timeout
        try:
            transport, drain = await loop.subprocess_exec(
                lambda: _Drain(loop, self.keep_output), *argv,
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                start_new_session=True, cwd="/", **(ids or {}))
        except (OSError, ValueError, KeyError, subprocess.SubprocessError) as err:
            # KeyError: a user or group given by a name this host does not have
            return ProcessResult(None, error=str(err))
        pgid = transport.get_pid()
        self._running[pgid] = drain
        timed_out = False
        try:
            try:
                await asyncio.wait_for(asyncio.shield(drain.exited), cap)
            except TimeoutError:
                timed_out = True
                await self._kill(pgid, drain)
            # Output still in the pipe when it exited: a moment to collect it.
            await asyncio.wait({drain.closed}, timeout=0.05)
        except asyncio.CancelledError:
            killpg(pgid, signal.SIGKILL)
            transport.close()
            raise
        finally:
            self._running.pop(pgid, None)
            drain.done.set_result(None)
        if not drain.closed.done():
            # A child that outlived the script still holds its output; keep draining it
            # (closing the pipe would SIGPIPE a daemon it started) until close().
            self._lingering.add(drain)
            drain.closed.add_done_callback(lambda _f: self._lingering.discard(drain))
        rc = transport.get_returncode()
        return ProcessResult(rc, timed_out, bytes(drain.tail), drain.total,
                            loop.time() - start, cap=cap)

    async def _kill(self, pgid: int, drain: _Drain) -> None:
        """SIGTERM the group; after the grace (or once its output pipe closes), SIGKILL
        whatever is left of it, children included."""
        killpg(pgid, signal.SIGTERM)
        await asyncio.wait({drain.closed}, timeout=self.kill_grace)
        killpg(pgid, signal.SIGKILL)
        await drain.exited

    @property
    def running(self) -> int:
        return len(self._running)

    async def close(self, timeout: float) -> None:
        """Wait up to `timeout` for running scripts, then kill what is left (each group
        gets SIGTERM and, after the grace, SIGKILL); stop draining lingering children."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, timeout)
        while self._running and loop.time() < deadline:
            await asyncio.wait({d.done for d in self._running.values()},
                               timeout=deadline - loop.time())
        left = dict(self._running)
        if left:
            log.warning("killing %d script(s) still running at shutdown", len(left))
            await asyncio.gather(*(self._kill(pgid, d) for pgid, d in left.items()))
        for d in list(self._lingering):
            if d.transport is not None:
                d.transport.close()
        self._lingering.clear()

"""What keepalived 2.2.7 does on each VRRP state change (vrrp_notify.c), for one instance.

In keepalived's order: the `notify_<state>` script, the generic `notify` script with
`INSTANCE <name> <STATE> <priority>` appended, a line on the notify FIFO(s), then an SMTP
alert. Everything is started from `transition()` and nothing is waited for there: scripts
run in their own sessions under a ScriptRunner, mail goes through a queue, and the FIFO
write is one non-blocking write() (which is also what keeps FIFO lines in transition order,
across instances, unlike the scripts: keepalived's issue #996).

Wiring (the daemon):
    n = Notifier(gd, inst, loop)            # checks the scripts, opens the FIFO
    InstanceDriver(..., on_transition=n.transition)
    MasterRxLowerPri action -> n.rx_lower_pri(src, priority)
    after Stop(): await n.close(timeout)    # lets notify_stop run, then kills leftovers
"""

from __future__ import annotations

import array
import asyncio
import fcntl
import logging
import os
import stat
import termios
from collections.abc import Sequence
from ipaddress import IPv4Address
from typing import ClassVar

from ipvsctl.process import KILL_GRACE
from pyvrrp.config.model import GlobalDefs, VrrpInstance
from pyvrrp.core.actions import Transition
from pyvrrp.io import smtp
from pyvrrp.io.scripts import (
    ScriptError,
    ScriptRunner,
    ScriptSpec,
    check_script,
    report_script_security,
)

log = logging.getLogger("pyvrrp")

# The cap on one notify script run; see docs/notify.md. keepalived has none (it never
# reaps a notify script by time, except notify_stop at shutdown); we kill the whole process
# group of a script still running after this long, because a wedged script left alone on a
# flapping instance piles up one process tree per transition. 120 s is above systemd's
# 90 s default start/stop timeout, so a script that restarts a service through systemctl
# is never cut short while systemd itself is still waiting.
NOTIFY_SCRIPT_TIMEOUT = 120.0

STATES = ("MASTER", "BACKUP", "FAULT", "STOP")

# Notify keyword -> attribute of model.Notify, in keepalived's names (used in the logs).
_KEYWORDS = {"notify_master": "master", "notify_backup": "backup", "notify_fault": "fault",
             "notify_stop": "stop", "notify": "any",
             "notify_master_rx_lower_pri": "master_rx_lower_pri"}


class _Fifo:
    """A notify FIFO, opened once and shared by every instance, as keepalived's one fd.

    Opened O_RDWR | O_NONBLOCK like keepalived's fifo_open(): we are a reader ourselves, so
    the open never blocks or fails for want of a reader, and a write never raises EPIPE.
    With no reader the kernel keeps up to a pipe's worth (64 KiB, ~2000 lines) for the next
    reader; past that a write fails with EAGAIN and the line is dropped, with a log line.
    A line is far below PIPE_BUF, so it is written whole or not at all. Once full, we drop
    until a reader has emptied half the pipe: a short line could still squeeze into the
    last page, and the reader would then see a gap-riddled, not a cut-off, stream.
    """

    _open: ClassVar[dict[str, _Fifo]] = {}

    def __init__(self, path: str, fd: int, remove: bool) -> None:
        self.path = path
        self.fd = fd
        self.remove = remove  # unlink at the end
        self.users = 0
        self.dropped = 0
        try:
            self.capacity = fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ)
        except OSError:
            self.capacity = 65536

    def _queued(self) -> int:
        """Bytes written and not yet read (we hold a read end: FIONREAD works)."""
        buf = array.array("i", [0])
        fcntl.ioctl(self.fd, termios.FIONREAD, buf)
        return buf[0]

    @classmethod
    def acquire(cls, path: str, vrrp: bool) -> _Fifo | None:
        """`vrrp`: it is vrrp_notify_fifo (not the global notify_fifo)."""
        fifo = cls._open.get(path)
        if fifo is None:
            fifo = cls._make(path, vrrp)
            if fifo is None:
                return None
            cls._open[path] = fifo
        fifo.users += 1
        return fifo

    @classmethod
    def _make(cls, path: str, vrrp: bool) -> _Fifo | None:
        created = False
        try:
            # keepalived asks for 0644 under its default umask 077: 0600 is what it makes.
            os.mkfifo(path, 0o600)
            created = True
        except FileExistsError:
            pass
        except OSError as err:
            log.error("Unable to create notify fifo %s: %s", path, err.strerror)
            return None
        try:
            fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as err:
            log.error("Unable to open notify fifo %s: %s", path, err.strerror)
            if created:
                os.unlink(path)
            return None
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            # keepalived would write into a regular file here; we refuse rather than
            # overwrite whatever it holds.
            log.error("notify fifo %s exists and is not a FIFO - ignoring it", path)
            os.close(fd)
            return None
        # keepalived 2.2.7 removes a FIFO it made only if it is the vrrp_notify_fifo: its
        # vrrp process closes the FIFOs at exit only when that one is set (vrrp_daemon.c),
        # so a global notify_fifo it made is left behind. Measured; followed.
        return cls(path, fd, created and vrrp)

    def write(self, line: bytes) -> None:
        if self.dropped and self._queued() > self.capacity // 2:
            self.dropped += 1
            return
        try:
            os.write(self.fd, line)
        except BlockingIOError:
            self.dropped += 1
            if self.dropped == 1:
                log.warning("notify fifo %s is full (is anything reading it?): dropping "
                            "events until it drains", self.path)
            return
        except OSError as err:
            log.warning("notify fifo %s: write failed: %s", self.path, err.strerror)
            return
        if self.dropped:
            log.warning("notify fifo %s: writing again; %d event(s) were dropped", self.path,
                        self.dropped)
            self.dropped = 0

    def release(self) -> None:
        self.users -= 1
        if self.users > 0:
            return
        self._open.pop(self.path, None)
        # keepalived unlinks first, so a reader that loops reopening it cannot find it.
        if self.remove:
            try:
                os.unlink(self.path)
            except OSError:
                pass
        os.close(self.fd)


class Notifier:
    """One VRRP instance's notify scripts, FIFO lines and SMTP alerts.

    `transition()` and `rx_lower_pri()` must be called from the event loop's thread; they
    never block and never raise. `close()` gives in-flight work `timeout` seconds.
    """

    def __init__(self, gd: GlobalDefs, inst: VrrpInstance, loop: asyncio.AbstractEventLoop,
                 *, script_timeout: float = NOTIFY_SCRIPT_TIMEOUT,
                 kill_grace: float = KILL_GRACE) -> None:
        self.name = inst.name
        self._loop = loop
        self._runner = ScriptRunner(script_timeout, kill_grace)
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self._priority = inst.priority  # our last known (effective) priority
        self.scripts: dict[str, ScriptSpec] = {}
        for keyword, attr in _KEYWORDS.items():
            cmdline = getattr(inst.notify, attr)
            if cmdline is None:
                continue
            got = check_script(cmdline, gd)
            if isinstance(got, ScriptError):
                log.error("(%s) %s disabled: %s", self.name, keyword, got)
            elif got.file_test:
                # keepalived drops these too: a notify hook must be something to execute.
                log.error("(%s) %s disabled: '%s' is a file test, not a script", self.name,
                          keyword, cmdline)
            else:
                self.scripts[keyword] = got
        report_script_security(gd, self.scripts.values())

        paths = [p for p in (gd.notify_fifo, gd.vrrp_notify_fifo) if p]
        if len(paths) == 2 and paths[0] == paths[1]:
            if paths[0] not in _Fifo._open:  # once, not once per instance
                log.info("notify FIFO %s has been specified for global and vrrp FIFO - ignoring "
                         "vrrp FIFO", paths[1])
            paths.pop()
        fifos = [_Fifo.acquire(p, vrrp=p != gd.notify_fifo) for p in paths]
        self._fifos = [f for f in fifos if f is not None]

        self._smtp: smtp.SmtpAlerter | None = None
        self._last_email_state: str | None = None
        wanted = inst.smtp_alert if inst.smtp_alert is not None else gd.smtp_alert
        cfg = smtp.settings(gd)
        if wanted and cfg is None:
            log.warning("(%s) smtp_alert is on but smtp_server or notification_email is not "
                        "set: no alert will be sent", self.name)
        elif wanted and cfg is not None:
            self._smtp = smtp.SmtpAlerter(cfg, self.name, loop)

    # -- events ---------------------------------------------------------------------------

    def transition(self, t: Transition) -> None:
        """keepalived's send_instance_notifies() for the state `t` enters."""
        try:
            state = t.new.value
            if state not in STATES or self._closed:
                return
            self._priority = t.priority
            keyword = "notify_" + state.lower()
            if keyword in self.scripts:
                self._spawn(keyword, self.scripts[keyword], ())
            if "notify" in self.scripts:
                self._spawn("notify", self.scripts["notify"],
                            ("INSTANCE", self.name, state, str(t.priority)))
            self._fifo_line(state, t.priority)
            if self._smtp is not None and self._last_email_state != state:
                # keepalived mails a state once, however often it is re-entered in a row.
                self._last_email_state = state
                self._smtp.alert(state)
        except Exception:  # noqa: BLE001 - a notification must never stop the speaker
            log.exception("(%s) notification of %s failed", self.name, t)

    def rx_lower_pri(self, src: IPv4Address, priority: int, *,
                     own_priority: int | None = None) -> None:
        """keepalived's send_event_notify(): a master heard `priority` from `src`.

        The script gets no arguments; the FIFO line carries *our* effective priority, as
        keepalived's does (`own_priority`, else the one of our last transition).
        """
        try:
            if self._closed:
                return
            if "notify_master_rx_lower_pri" in self.scripts:
                self._spawn("notify_master_rx_lower_pri",
                            self.scripts["notify_master_rx_lower_pri"], ())
            self._fifo_line("MASTER_RX_LOWER_PRI",
                            self._priority if own_priority is None else own_priority)
        except Exception:  # noqa: BLE001
            log.exception("(%s) notification of lower priority %d from %s failed", self.name,
                          priority, src)

    def _fifo_line(self, event: str, priority: int) -> None:
        line = f'INSTANCE "{self.name}" {event} {priority}\n'.encode()
        for fifo in self._fifos:
            fifo.write(line)

    def _spawn(self, keyword: str, spec: ScriptSpec, extra: Sequence[str]) -> None:
        task = self._loop.create_task(self._run(keyword, spec, extra),
                                      name=f"{self.name}-{keyword}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, keyword: str, spec: ScriptSpec, extra: Sequence[str]) -> None:
        shown = " ".join([*spec.argv, *extra])
        log.debug("(%s) running %s script '%s' as %s", self.name, keyword, shown, spec.user)
        try:
            res = await self._runner.run(spec, extra)
        except asyncio.CancelledError:
            log.warning("(%s) %s script '%s' abandoned at shutdown", self.name, keyword, shown)
            raise
        except Exception:  # noqa: BLE001
            log.exception("(%s) %s script '%s' failed", self.name, keyword, shown)
            return
        msg = f"({self.name}) {keyword} script '{shown}' {res.describe()}"
        if res.returncode == 0 and not res.timed_out:
            log.info("%s", msg)
            return
        if res.output:
            out = res.output.decode("utf-8", "replace").strip()
            more = f"last {len(res.output)} of {res.output_bytes} bytes" \
                if res.output_bytes > len(res.output) else f"{res.output_bytes} bytes"
            msg += f"; its output ({more}): {out}"
        log.warning("%s", msg)

    # -- shutdown -------------------------------------------------------------------------

    async def close(self, timeout: float) -> None:
        """Let in-flight scripts and alerts finish for up to `timeout` seconds, then kill
        the scripts' process groups (SIGTERM, then SIGKILL after the grace), drop unsent
        mail, and release the FIFO. Idempotent; never raises."""
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, timeout)
        try:
            waits: list[asyncio.Future[object]] = []
            if self._tasks:
                waits.append(asyncio.ensure_future(
                    asyncio.wait(set(self._tasks), timeout=max(0.0, timeout))))
            if self._smtp is not None:
                waits.append(asyncio.ensure_future(self._smtp.close(timeout)))
            if waits:
                await asyncio.gather(*waits)
            await self._runner.close(max(0.0, deadline - loop.time()))
            if self._tasks:
                # The killed scripts' runs end by themselves; whatever has not, is cancelled.
                _, pending = await asyncio.wait(set(self._tasks), timeout=1.0)
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
        except Exception:  # noqa: BLE001
            log.exception("(%s) closing notifications failed", self.name)
        finally:
            for fifo in self._fifos:
                fifo.release()
            self._fifos = []

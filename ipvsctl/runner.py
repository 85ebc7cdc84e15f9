"""A small, safe script runner for ipvsctl: notify_up/down, quorum_up/down, MISC_CHECK.

ipvsctl never imports pyvrrp, whose runner (pyvrrp/io/scripts.py) does more (script
security, keepalived's exact quoting rules). This one keeps the parts that matter for
safety: no shell (the command line is split with shlex, the first word must be an
executable file), its own session so a timeout kills the whole process group, a time
bound, and output read up to a bound and logged. pyvrrp may inject its own runner instead
(the MiscRunner protocol in health/misc.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shlex
import shutil
import signal
from collections.abc import Sequence
from dataclasses import dataclass

from ipvsctl.health.config import MiscCheck

log = logging.getLogger("ipvsctl")
OUTPUT_LIMIT = 4096  # bytes of a script's output kept for the log
DEFAULT_TIMEOUT = 30.0  # seconds for notify scripts (keepalived has none; we bound them)


@dataclass(frozen=True)
class Spec:
    argv: tuple[str, ...]
    user: str | None = None
    group: str | None = None


@dataclass(frozen=True)
class Result:
    returncode: int | None  # None: could not start; < 0: killed by that signal
    timed_out: bool
    output: str = ""
    error: str = ""

    def describe(self) -> str:
        if self.returncode is None:
            return f"could not start: {self.error}"
        if self.timed_out:
            return "timed out (killed)"
        if self.returncode < 0:
            return f"killed by signal {-self.returncode}"
        return f"exited with status {self.returncode}"


def parse(command: str, user: str | None = None, group: str | None = None) -> Spec:
    """Split a configured command line; ValueError if it cannot run."""
    argv = shlex.split(command)
    if not argv:
        raise ValueError("empty command")
    path = argv[0] if "/" in argv[0] else shutil.which(argv[0])
    if path is None or not os.path.isfile(path) or not os.access(path, os.X_OK):
        raise ValueError(f"'{argv[0]}' is not an executable file")
    return Spec((path, *argv[1:]), user, group)


def prepare_misc(check: MiscCheck) -> Spec | str:
    """MiscRunner's `prepare`: the spec, or why the script is refused."""
    try:
        return parse(check.misc_path, check.user, check.group)
    except ValueError as err:
        return str(err)


class ScriptRunner:
    def __init__(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.timeout = timeout

    async def run(self, spec: Spec, extra: Sequence[str] = (),
                  timeout: float | None = None) -> Result:
        try:
            proc = await asyncio.create_subprocess_exec(
                *spec.argv, *extra, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
                start_new_session=True, user=spec.user, group=spec.group)
        except (OSError, ValueError, KeyError) as err:
            return Result(None, False, error=str(err))
        assert proc.stdout is not None
        out = bytearray()

        async def drain() -> None:
            assert proc.stdout is not None
            while chunk := await proc.stdout.read(65536):
                if len(out) < OUTPUT_LIMIT:
                    out.extend(chunk[:OUTPUT_LIMIT - len(out)])
            await proc.wait()

        timed_out = False
        try:
            await asyncio.wait_for(drain(), timeout if timeout is not None else self.timeout)
        except (TimeoutError, asyncio.CancelledError) as err:
            timed_out = isinstance(err, TimeoutError)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
            if not timed_out:
                raise
        return Result(proc.returncode, timed_out, out.decode(errors="replace").strip())

    async def notify(self, command: str, what: str) -> Result | None:
        """Run a notify/quorum script and log how it ended; never raises."""
        try:
            spec = parse(command)
        except ValueError as err:
            log.error("%s: cannot run '%s': %s", what, command, err)
            return None
        res = await self.run(spec)
        level = logging.INFO if res.returncode == 0 else logging.WARNING
        log.log(level, "%s: '%s' %s%s", what, command, res.describe(),
                f": {res.output}" if res.output else "")
        return res

"""Run a tracked command without a shell, without blocking, and without letting it run wild.

Output is drained (so a chatty script never blocks on a full pipe) and only the first few
KB are kept; on timeout the whole process group is killed, children included.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import signal
from dataclasses import dataclass

KEEP_OUTPUT = 4096


@dataclass(frozen=True)
class Outcome:
    status: int | None  # exit status; None when killed on timeout or not started
    output: bytes
    error: str = ""


def split_command(cmdline: str) -> list[str]:
    """keepalived splits on whitespace, honouring quotes."""
    return shlex.split(cmdline)


def resolve(argv0: str) -> str | None:
    """The executable's path, or None when it is missing or not executable."""
    if "/" in argv0:
        return argv0 if os.path.isfile(argv0) and os.access(argv0, os.X_OK) else None
    return shutil.which(argv0)


async def run_bounded(argv: list[str], timeout: float, user: int | None = None,
                      group: int | None = None) -> Outcome:
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, start_new_session=True, user=user, group=group)
    except OSError as err:
        return Outcome(None, b"", f"cannot run {argv[0]}: {err.strerror}")
    kept = bytearray()

    async def drain() -> None:
        assert proc.stdout is not None
        while chunk := await proc.stdout.read(65536):
            if len(kept) < KEEP_OUTPUT:
                kept.extend(chunk[: KEEP_OUTPUT - len(kept)])

    reader = asyncio.ensure_future(drain())
    try:
        status = await asyncio.wait_for(proc.wait(), timeout)
    except TimeoutError:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        await proc.wait()
        reader.cancel()
        return Outcome(None, bytes(kept), f"timed out after {timeout:g}s, process group killed")
    # A child that daemonised may keep the pipe open: stop reading, don't wait for it.
    try:
        await asyncio.wait_for(asyncio.shield(reader), 0.05)
    except TimeoutError:
        reader.cancel()
    return Outcome(status, bytes(kept))

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
    # Our own pipe, not asyncio's: on 3.11 Process.wait() also waits for every holder of
    # the child's stdout to close it, and a daemon the script started may hold it forever.
    rfd, wfd = os.pipe()
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=wfd, stderr=wfd,
            start_new_session=True, user=user, group=group)
    except OSError as err:
        os.close(rfd)
        return Outcome(None, b"", f"cannot run {argv[0]}: {err.strerror}")
    finally:
        os.close(wfd)
    os.set_blocking(rfd, False)
    kept = bytearray()
    loop = asyncio.get_running_loop()

    def readable() -> None:
        try:
            chunk = os.read(rfd, 65536)
        except BlockingIOError:
            return
        if not chunk:
            loop.remove_reader(rfd)
        elif len(kept) < KEEP_OUTPUT:
            kept.extend(chunk[: KEEP_OUTPUT - len(kept)])

    loop.add_reader(rfd, readable)
    try:
        status = await asyncio.wait_for(proc.wait(), timeout)
        error = ""
    except TimeoutError:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        await proc.wait()
        status, error = None, f"timed out after {timeout:g}s, process group killed"
    finally:
        readable()
        loop.remove_reader(rfd)
        os.close(rfd)
    return Outcome(status, bytes(kept), error)

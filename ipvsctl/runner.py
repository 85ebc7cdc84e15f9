"""ipvsctl's scripts: notify_up/down, quorum_up/down, MISC_CHECK.

The command line is split with shlex and the first word must be an executable file (no
shell); `ipvsctl.process` runs it (the runner pyvrrp shares): its own session so a timeout
kills the whole process group, a time bound, and the output's tail logged. pyvrrp's
scripts add keepalived's script security and quoting rules on top (pyvrrp/io/scripts.py);
pyvrrp may inject its own runner for MISC_CHECK (the MiscRunner protocol in
health/misc.py).
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
from collections.abc import Sequence
from dataclasses import dataclass

from ipvsctl.health.config import MiscCheck
from ipvsctl.process import ProcessResult, ProcessRunner

log = logging.getLogger("ipvsctl")
DEFAULT_TIMEOUT = 30.0  # seconds for notify scripts (keepalived has none; we bound them)


@dataclass(frozen=True)
class Spec:
    argv: tuple[str, ...]
    user: str | None = None
    group: str | None = None


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


class ScriptRunner(ProcessRunner):
    def __init__(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        super().__init__(timeout)

    async def run(self, spec: Spec, extra: Sequence[str] = (),
                  timeout: float | None = None) -> ProcessResult:
        ids = {k: v for k, v in (("user", spec.user), ("group", spec.group)) if v is not None}
        return await self.exec([*spec.argv, *extra], ids, timeout)

    async def notify(self, command: str, what: str) -> ProcessResult | None:
        """Run a notify/quorum script and log how it ended; never raises."""
        try:
            spec = parse(command)
        except ValueError as err:
            log.error("%s: cannot run '%s': %s", what, command, err)
            return None
        res = await self.run(spec)
        level = logging.INFO if res.returncode == 0 else logging.WARNING
        out = res.output.decode(errors="replace").strip()
        log.log(level, "%s: '%s' %s%s", what, command, res.describe(), f": {out}" if out else "")
        return res

"""MISC_CHECK: run the configured script through the project's shared script runner.

ipvsctl never imports pyvrrp, and the safe runner (pyvrrp/io/scripts.py: keepalived's
splitting, script security, script user, own session, process-group kill, bounded output)
lives there. So the caller injects it: `MiscRunner(runner, prepare)`, where `runner` has
`ScriptRunner.run()`'s shape and `prepare(check)` turns a MiscCheck into what `run()`
takes, or into a str saying why the script is refused (pyvrrp's `check_script()` does
exactly that). keepalived drops a MISC_CHECK whose script it refuses ("Disabling misc
script ... due to insecure"); the scheduler does the same, with a log line.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from ipvsctl.health.config import MiscCheck, ResolvedCheck
from ipvsctl.health.state import Outcome, misc_outcome


class ScriptResultLike(Protocol):
    returncode: int | None  # None: it could not be started; < 0: killed by that signal
    timed_out: bool

    def describe(self) -> str: ...


class ScriptRunnerLike(Protocol):
    async def run(self, spec: Any, extra: Sequence[str] = (),
                  timeout: float | None = None) -> ScriptResultLike: ...


Prepare = Callable[[MiscCheck], Any]  # -> a spec for runner.run(), or a str: why refused


class MiscRunner:
    """Runs MISC_CHECK scripts with an injected runner; one process per run, no shell
    unless the runner decides one is needed."""

    def __init__(self, runner: ScriptRunnerLike, prepare: Prepare) -> None:
        self.runner = runner
        self._prepare = prepare
        self._specs: dict[MiscCheck, Any] = {}

    def prepare(self, check: ResolvedCheck) -> str | None:
        """Check the script once; None if it may run, else why it is refused."""
        misc = check.checker
        if not isinstance(misc, MiscCheck):
            raise ValueError(f"not a MISC_CHECK: {check}")
        if misc in self._specs:
            return None
        try:
            spec = self._prepare(misc)
        except (OSError, ValueError) as err:
            return f"script '{misc.misc_path}' refused: {err}"
        if isinstance(spec, str):
            return spec
        self._specs[misc] = spec
        return None

    async def run(self, check: ResolvedCheck) -> Outcome:
        misc = check.checker
        assert isinstance(misc, MiscCheck)
        refused = self.prepare(check)
        if refused is not None:
            return Outcome(False, refused, local=True)
        res = await self.runner.run(self._specs[misc], timeout=check.misc_timeout)
        return misc_outcome(res.returncode, res.timed_out, misc.misc_dynamic, res.describe())

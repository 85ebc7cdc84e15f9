"""`ipvsctl run services.yaml`: the checker daemon (keepalived's checker process).

    health checks (HealthScheduler) --events--> LvsState (table.py, pure)
        --table--> Reconciler.update (diff against what we applied; kernel.py writes)
        --actions--> notify / quorum scripts (runner.py), logs with the reason
    every --resync seconds: a dump-and-diff that repairs drift behind our back

Signals (docs/lvs.md):
    SIGHUP   reload. A config that does not load is logged and the running one kept; an
             unchanged one changes nothing. Health state is kept when no checker changed.
    SIGTERM/SIGINT   stop: omega scripts, then (as keepalived) remove the services we own
             and our fwmark rules; `--keep-on-exit` leaves them (a restart keeps its
             connections: the next start dumps, diffs, and changes nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
from pathlib import Path

from ipvsctl.checks import health_specs
from ipvsctl.config import ConfigError, load
from ipvsctl.health.config import HealthConfigError, RsHealth
from ipvsctl.health.misc import MiscRunner
from ipvsctl.health.scheduler import HealthScheduler, describe
from ipvsctl.health.state import Event
from ipvsctl.kernel import IpvsError
from ipvsctl.model import Table, VirtualServer
from ipvsctl.nft import NftMarks
from ipvsctl.reconciler import Reconciler
from ipvsctl.runner import ScriptRunner, prepare_misc
from ipvsctl.table import Action, Log, LvsState, Script

log = logging.getLogger("ipvsctl")
STOP_SCRIPT_WAIT = 5.0  # seconds the omega scripts get at shutdown (keepalived: 1 s)


class Daemon:
    def __init__(self, path: Path, reconciler: Reconciler, *, resync: float = 30.0,
                 keep_on_exit: bool = False, status_path: Path | None = None,
                 nft: NftMarks | None = None, runner: ScriptRunner | None = None) -> None:
        self.path = path
        self.rec = reconciler
        self.resync = resync
        self.keep_on_exit = keep_on_exit
        self.status_path = status_path
        self.nft = nft or NftMarks()
        self.runner = runner or ScriptRunner()
        self.vss: tuple[VirtualServer, ...] = ()
        self.specs: list[RsHealth] = []
        self.scheduler: HealthScheduler | None = None
        self.lvs = LvsState(())
        self._scripts: set[asyncio.Task[object]] = set()
        self._stop = asyncio.Event()
        self._hup = asyncio.Event()

    # -- config

    def _load(self) -> tuple[tuple[VirtualServer, ...], list[RsHealth]] | None:
        try:
            loaded = load(self.path)
            specs = health_specs(loaded.virtual_servers)
        except (ConfigError, HealthConfigError, OSError) as err:
            for line in str(err).splitlines():
                log.error("%s", line)
            return None
        for warning in loaded.warnings:
            log.warning("%s", warning)
        return loaded.virtual_servers, specs

    def _scheduler(self, specs: list[RsHealth]) -> HealthScheduler:
        return HealthScheduler(specs, self._on_event,
                               misc=MiscRunner(self.runner, prepare_misc))

    # -- lifecycle

    async def run(self) -> int:
        """Until SIGTERM/SIGINT; 2 if the first config does not load."""
        first = self._load()
        if first is None:
            return 2
        self.vss, self.specs = first
        try:
            self.scheduler = self._scheduler(self.specs)
        except ValueError as err:
            log.error("%s", err)
            return 2
        self.lvs = LvsState(self.vss, self.scheduler.state.snapshot())
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, self._hup.set)
        log.info("starting: %d virtual servers, %d real servers, %d checkers from %s",
                 len(self.vss), len(self.specs), len(self.scheduler.state), self.path)
        self._do(self.lvs.start())
        self._apply("start", full=True)
        self.scheduler.start()
        try:
            await self._main_loop()
        finally:
            await self._shutdown()
        return 0

    async def _main_loop(self) -> None:
        loop = asyncio.get_running_loop()
        next_resync = loop.time() + self.resync if self.resync > 0 else None
        while not self._stop.is_set():
            timeout = None if next_resync is None else max(0.0, next_resync - loop.time())
            stop = asyncio.ensure_future(self._stop.wait())
            hup = asyncio.ensure_future(self._hup.wait())
            await asyncio.wait((stop, hup), timeout=timeout,
                               return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            hup.cancel()
            if self._stop.is_set():
                return
            if self._hup.is_set():
                self._hup.clear()
                await self.reload()
            if next_resync is not None and loop.time() >= next_resync:
                next_resync = loop.time() + self.resync
                try:
                    self.rec.resync()
                except IpvsError as err:
                    log.error("resync failed: %s", err)

    async def reload(self) -> None:
        """SIGHUP: keepalived's reload, without touching what did not change."""
        log.info("reloading %s", self.path)
        new = self._load()
        if new is None:
            log.error("reload failed: keeping the running config")
            return
        vss, specs = new
        if vss == self.vss:
            log.info("reload: config unchanged, nothing to do")
            return
        assert self.scheduler is not None
        restarted = specs != self.specs
        if restarted:
            # Checkers changed: the checks restart, each surviving real server keeping
            # its health (keepalived's migrate_checkers): a failed one stays out.
            try:
                scheduler = self._scheduler(specs)
            except ValueError as err:
                log.error("reload failed: %s; keeping the running config", err)
                return
            await self.scheduler.stop()
            scheduler.state.adopt(self.scheduler.state)
            self.scheduler = scheduler
            log.info("reload: checkers changed, health checks restarted")
        old = self.lvs
        self.vss, self.specs = vss, specs
        self.lvs = LvsState(vss, self.scheduler.state.snapshot())
        self._do(self.lvs.carry_quorum(old))
        self._apply("reload", full=True)
        if restarted:
            self.scheduler.start()

    async def _shutdown(self) -> None:
        if self.scheduler is not None:
            await self.scheduler.stop()
        self._do(self.lvs.stop())
        if self._scripts:
            await asyncio.wait(self._scripts, timeout=STOP_SCRIPT_WAIT)
        if self.keep_on_exit:
            log.info("stopping: the IPVS table and fwmark rules are left in place "
                     "(--keep-on-exit)")
            return
        try:
            report = self.rec.apply(Table())
            for op in report.ops:
                log.info("IPVS: %s (stopping)", op)
        except IpvsError as err:
            log.error("stopping: could not remove our services: %s", err)
        self.nft.remove()
        log.info("stopped")

    # -- the pump

    def _on_event(self, event: Event) -> None:
        self._do(self.lvs.handle(event))
        self._apply(describe(event))

    def _do(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Log):
                log.log(action.level, "%s", action.message)
            elif isinstance(action, Script):
                task = asyncio.get_running_loop().create_task(
                    self.runner.notify(action.command, action.what))
                self._scripts.add(task)
                task.add_done_callback(self._scripts.discard)

    def _apply(self, reason: str, full: bool = False) -> None:
        table = self.lvs.table()
        try:
            report = self.rec.apply(table) if full else self.rec.update(table)
        except IpvsError as err:
            log.error("IPVS update failed (%s): %s; the next resync retries", reason, err)
            return
        for op in report.ops:
            log.info("IPVS: %s (%s)", op, reason)
        if full:
            self.nft.apply(self.vss)
        self._write_status()

    def _write_status(self) -> None:
        if self.status_path is None:
            return
        status = self.lvs.status()
        if self.scheduler is not None:  # each checker's last reason, for humans
            state = self.scheduler.state
            for key in state.snapshot():
                servers = status.get(key.vs, {}).get("real_servers", {})
                if str(key) in servers:
                    servers[str(key)]["checkers"] = [
                        {"checker": c, "up": up, "reason": why}
                        for c, up, why in state.checker_states(key)]
        with contextlib.suppress(OSError):
            self.status_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.status_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(status, indent=1))
            tmp.replace(self.status_path)

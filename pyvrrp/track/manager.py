"""Wire tracked objects to instances: on any change, recompute and feed the routers.

Only objects that some instance tracks are started, as in keepalived. A script that
does not exist or cannot be executed is disabled at start with keepalived's warning, and
the instances behave as if it were not tracked.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pyvrrp.config.compare import same
from pyvrrp.config.model import Config, Track, VrrpInstance
from pyvrrp.core.events import Event, SetFault, SetPriority
from pyvrrp.core.tracking import TrackState, effective
from pyvrrp.io.scripts import ScriptError, ScriptSpec, check_script
from pyvrrp.track.sources import FileSource, ProcessSource, ScriptSource

log = logging.getLogger("pyvrrp.track")

Feed = Callable[[Event], None]


@dataclass
class _Instance:
    inst: VrrpInstance
    feed: Feed
    faults: frozenset[str] = frozenset()
    priority: int | None = None


class TrackManager:
    """`previous`: the manager of the config being replaced by a reload. Its sources whose
    definition did not change are taken over still running, so a reload does not reset a
    script's rise/fall state (which could flap a master)."""

    def __init__(self, config: Config, previous: TrackManager | None = None) -> None:
        self.config = config
        self.previous = previous
        self._adopted: set[int] = set()
        self.scripts: dict[str, ScriptSource] = {}
        self.files: dict[str, FileSource] = {}
        self.processes: dict[str, ProcessSource] = {}
        self.links: dict[str, bool] = {}
        self._instances: list[_Instance] = []
        self.disabled: set[str] = set()

    # -- set-up ---------------------------------------------------------------------------

    def _adopt(self, kind: str, name: str, definition: object) -> Any:
        """A running source of the previous config with the same definition, if any."""
        if self.previous is None:
            return None
        old = getattr(self.previous, kind).get(name)
        if old is None or not same(_definition(old), definition):
            return None
        old.changed = self.update
        self._adopted.add(id(old))
        return old

    def add_instance(self, inst: VrrpInstance, feed: Feed) -> None:
        self._instances.append(_Instance(inst, feed))
        for t in inst.track_script:
            if t.name not in self.scripts and t.name not in self.disabled:
                self._add_script(t.name)
        for t in inst.track_file:
            if t.name not in self.files:
                tf = next(f for f in self.config.track_files if f.name == t.name)
                self.files[t.name] = self._adopt("files", t.name, tf) or FileSource(
                    tf, self.update)
        for t in inst.track_process:
            if t.name not in self.processes:
                tp = next(p for p in self.config.track_processes if p.name == t.name)
                self.processes[t.name] = self._adopt("processes", t.name, tp) or ProcessSource(
                    tp, self.update)

    def _add_script(self, name: str) -> None:
        script = next(s for s in self.config.vrrp_scripts if s.name == name)
        adopted = self._adopt("scripts", name, script)
        if adopted is not None:
            self.scripts[name] = adopted
            return
        spec = check_script(script.script, self.config.global_defs, script.user, script.group)
        if isinstance(spec, ScriptError):
            log.warning("%s: vrrp_script %s: %s", script.pos, name, spec)
            log.warning("Disabling track script %s since not found/accessible", name)
            self.disabled.add(name)
            return
        self.scripts[name] = ScriptSource(script, spec, self.update)

    def script_specs(self) -> list[ScriptSpec]:
        return [s.spec for s in self.scripts.values()]

    @property
    def has_instances(self) -> bool:
        return bool(self._instances)

    def tracked_links(self) -> set[str]:
        return {t.name for i in self._instances for t in i.inst.track_interface}

    def _sources(self) -> list[Any]:
        return [*self.scripts.values(), *self.files.values(), *self.processes.values()]

    def start(self) -> None:
        """Start the observers, then push the initial priorities and faults. Sources taken
        over from the previous config keep running; the rest of it is stopped."""
        for source in self._sources():
            if id(source) not in self._adopted:
                source.start()
        if self.previous is not None:
            for source in self.previous._sources():
                if id(source) not in self._adopted:
                    source.close()
            self.previous = None
        self.update()

    def close(self) -> None:
        for source in self._sources():
            source.close()

    async def aclose(self) -> None:
        """Stop everything and kill scripts still running (their process groups)."""
        self.close()
        for script in self.scripts.values():
            await script.aclose()

    # -- recomputation --------------------------------------------------------------------

    def link_changed(self, ifname: str, up: bool) -> None:
        self.links[ifname] = up
        self.update()

    def states(self, inst: VrrpInstance) -> list[TrackState]:
        out: list[TrackState] = []
        for t in inst.track_script:
            src = self.scripts.get(t.name)
            if src is not None:
                w, rev = _weight(t, src.script.weight, src.script.weight_reverse)
                out.append(TrackState(f"track_script {t.name}", w, rev, up=src.up))
        for t in inst.track_interface:
            w, rev = _weight(t, 0, False)
            out.append(TrackState(f"track_interface {t.name}", w, rev,
                                  up=self.links.get(t.name, False)))
        for t in inst.track_file:
            fsrc = self.files[t.name]
            w, rev = _weight(t, fsrc.tf.weight, fsrc.tf.reverse)
            out.append(TrackState(f"track_file {t.name}", w, rev, value=fsrc.value))
        for t in inst.track_process:
            psrc = self.processes[t.name]
            w, rev = _weight(t, psrc.tp.weight, psrc.tp.weight_reverse)
            out.append(TrackState(f"track_process {t.name}", w, rev, up=psrc.up))
        return out

    def update(self) -> None:
        for item in self._instances:
            priority, faults = effective(item.inst.priority, self.states(item.inst))
            for name in sorted(faults - item.faults):
                item.feed(SetFault(name, True))
            for name in sorted(item.faults - faults):
                item.feed(SetFault(name, False))
            item.faults = faults
            if priority != item.priority:
                if item.priority is not None or priority != item.inst.priority:
                    item.feed(SetPriority(priority, "tracking"))
                item.priority = priority


def _definition(source: Any) -> object:
    for attr in ("script", "tf", "tp"):
        if hasattr(source, attr):
            return getattr(source, attr)
    raise TypeError(source)


def _weight(t: Track, default: int, default_reverse: bool) -> tuple[int, bool]:
    return (default, default_reverse) if t.weight is None else (t.weight, t.reverse)

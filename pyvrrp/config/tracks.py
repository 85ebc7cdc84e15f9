"""Cross-checks of an instance's tracked objects, shared by both front ends.

keepalived's verdicts: a reference to an undefined script/file/process is a warning and
is ignored; a weight on an address owner (priority 255) is ignored with a warning, since
an owner's priority never moves (the track then only means FAULT).
"""

from __future__ import annotations

from dataclasses import replace

from pyvrrp.config.diagnostics import Diagnostic
from pyvrrp.config.model import Config, Track, VrrpInstance


def _check(inst: VrrpInstance, kind: str, tracks: tuple[Track, ...], known: set[str] | None,
           diags: list[Diagnostic]) -> tuple[Track, ...]:
    kept = []
    for t in tracks:
        if known is not None and t.name not in known:
            diags.append(Diagnostic(t.pos, "warning",
                                    f"({inst.name}) {kind} {t.name} not found, ignoring"))
            continue
        if inst.priority == 255 and t.weight:
            diags.append(Diagnostic(t.pos, "warning", f"({inst.name}) ignoring weight of "
                                    f"{kind} {t.name}: an address owner's priority is fixed"))
            t = replace(t, weight=0)
        kept.append(t)
    return tuple(kept)


def check_tracks(config: Config, diags: list[Diagnostic]) -> Config:
    scripts = {s.name for s in config.vrrp_scripts}
    files = {f.name for f in config.track_files}
    procs = {p.name for p in config.track_processes}
    out = []
    for inst in config.vrrp_instances:
        out.append(replace(
            inst,
            track_script=_check(inst, "track_script", inst.track_script, scripts, diags),
            track_interface=_check(inst, "track_interface", inst.track_interface, None, diags),
            track_file=_check(inst, "track_file", inst.track_file, files, diags),
            track_process=_check(inst, "track_process", inst.track_process, procs, diags),
        ))
    return replace(config, vrrp_instances=tuple(out))

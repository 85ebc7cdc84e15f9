"""Collects diagnostics for the keepalived.conf front end, in the order they are found.

Severity follows keepalived's verdict: "error" where keepalived refuses to run (or pyvrrp
cannot run what it asks for), "warning" where keepalived logs a config error and goes on,
"note" for what pyvrrp parsed and keeps but does not run ("parsed, not supported").

A lexical problem (an unterminated quote, a split long line) absorbs the diagnostics that
follow from it on the same line, so each bad line gets one clear message with the worst
severity of its consequences.
"""

from __future__ import annotations

from pyvrrp.config.diagnostics import Diagnostic
from pyvrrp.config.model import Pos

RANK = {"note": 0, "warning": 1, "error": 2}
MAX_DIAGNOSTICS = 1000


class Report:
    def __init__(self) -> None:
        self.items: list[Diagnostic] = []
        self._lexical: dict[tuple[str, int], int] = {}
        self.dropped = 0

    def add(self, pos: Pos, severity: str, message: str, absorb: bool = True) -> None:
        at = self._lexical.get((pos.file, pos.line)) if absorb else None
        if at is not None:
            lex = self.items[at]
            worst = max(lex.severity, severity, key=RANK.__getitem__)
            self.items[at] = Diagnostic(lex.pos, worst, f"{lex.message}; so: {message}")
            return
        if len(self.items) >= MAX_DIAGNOSTICS:
            self.dropped += 1
            return
        self.items.append(Diagnostic(pos, severity, message))

    def error(self, pos: Pos, message: str) -> None:
        self.add(pos, "error", message)

    def warning(self, pos: Pos, message: str) -> None:
        self.add(pos, "warning", message)

    def note(self, pos: Pos, message: str) -> None:
        self.add(pos, "note", message)

    def lexical(self, pos: Pos, severity: str, message: str) -> None:
        """A problem with the line itself; later diagnostics on that line fold into it."""
        self.add(pos, severity, message)
        if self.items and self.items[-1].pos == pos:
            self._lexical[(pos.file, pos.line)] = len(self.items) - 1

    def has_errors(self) -> bool:
        return any(d.severity == "error" for d in self.items)

    def finish(self) -> list[Diagnostic]:
        out = list(self.items)
        if self.dropped:
            out.append(Diagnostic(out[-1].pos, "note",
                                  f"{self.dropped} more diagnostics not shown"))
        return out

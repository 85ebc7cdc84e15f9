"""Config diagnostics that name file, line and column (1-based), as `file:line:col: sev: msg`."""

from __future__ import annotations

from dataclasses import dataclass

from pyvrrp.config.model import Pos


@dataclass(frozen=True)
class Diagnostic:
    pos: Pos
    severity: str  # "error" or "warning"
    message: str

    def __str__(self) -> str:
        return f"{self.pos}: {self.severity}: {self.message}"


class ConfigError(Exception):
    """The config cannot run; carries every diagnostic found (errors and warnings)."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = diagnostics
        super().__init__("\n".join(str(d) for d in diagnostics))

    @classmethod
    def at(cls, pos: Pos, message: str) -> ConfigError:
        return cls([Diagnostic(pos, "error", message)])

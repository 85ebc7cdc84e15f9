"""Golden tests: each tests/golden/NAME.conf is checked as `pyvrrp check` checks it, on a
stub host with eth0, eth1 and lo, and every diagnostic must match NAME.expected line for
line (`file:line:col: severity: message`, then the verdict).

The verdict of each input was compared with `keepalived -t` (netns_tests/
test_keepalived_oracle.py runs them again). To regenerate after a deliberate change:
PYVRRP_UPDATE_GOLDEN=1 pytest tests/test_keepalived_golden.py, then read the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pyvrrp.config.check import CheckResult, check
from pyvrrp.config.host import Host
from pyvrrp.config.parser import Options

GOLDEN = Path(__file__).parent / "golden"
CASES = sorted(p.stem for p in GOLDEN.glob("*.conf"))


class StubHost(Host):
    """eth0 and eth1, a loopback lo, and scripts only under /bin."""

    def interfaces(self) -> dict[str, bool]:
        return {"eth0": False, "eth1": False, "lo": True}

    def script(self, command: str) -> Path | None:
        first = command.split()[0] if command.split() else ""
        return Path(first) if first.startswith("/bin/") else None

    def user(self, name: str) -> bool:
        return name == "root"


def golden_check(name: str) -> CheckResult:
    return check(GOLDEN / f"{name}.conf", Options(config_id="node1"), host=StubHost())


def render(result: CheckResult) -> str:
    lines = []
    for d in result.diagnostics:
        shown = os.path.relpath(d.pos.file, GOLDEN)
        lines.append(f"{shown}:{d.pos.line}:{d.pos.col}: {d.severity}: {d.message}")
    lines.append("would run" if result.ok else "would not run")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("name", CASES)
def test_golden(name: str) -> None:
    got = render(golden_check(name))
    expected = GOLDEN / f"{name}.expected"
    if os.environ.get("PYVRRP_UPDATE_GOLDEN"):
        expected.write_text(got, encoding="utf-8")
    assert got == expected.read_text(encoding="utf-8")


def test_every_golden_input_has_an_expectation() -> None:
    assert sorted(p.stem for p in GOLDEN.glob("*.expected")) == CASES

"""Rules of the code's shape that a reviewer would otherwise have to remember."""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
            if node.module.startswith("pyvrrp."):
                names.add(node.module)
    return names


def test_the_pure_core_does_no_io() -> None:
    """pyvrrp/core takes `now` and events: no sockets, clocks, event loops or processes."""
    forbidden = {"asyncio", "socket", "time", "subprocess", "os", "select", "pyroute2"}
    for path in (ROOT / "pyvrrp" / "core").glob("*.py"):
        assert not imports(path) & forbidden, (path.name, imports(path) & forbidden)


def test_ipvsctl_never_imports_pyvrrp() -> None:
    for path in (ROOT / "ipvsctl").rglob("*.py"):
        assert "pyvrrp" not in imports(path), path


def test_scapy_stays_out_of_the_daemon() -> None:
    """scapy is for tests and the packet oracle; the daemon's start-up must not pay for it."""
    for pkg in ("pyvrrp", "ipvsctl"):
        for path in (ROOT / pkg).rglob("*.py"):
            source = path.read_text()
            top_level = [n for n in ast.parse(source).body
                         if isinstance(n, ast.Import | ast.ImportFrom)]
            for node in top_level:
                mod = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
                assert not (mod or "").startswith("scapy"), path


def test_test_file_basenames_are_unique() -> None:
    """pytest imports test files by basename (no packages): two alike break collection."""
    names = Counter(p.name for d in ("tests", "netns_tests") for p in (ROOT / d).rglob("*.py")
                    if p.name.startswith("test_") or p.name in ("decode.py",))
    assert not [n for n, c in names.items() if c > 1]

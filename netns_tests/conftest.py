"""Fixtures for the network-namespace suite (needs root and ``ip netns``)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

from pyvrrp.lab.topology import PREFIX, Lab, cleanup_stale

HERE = Path(__file__).parent


@cache
def unavailable_reason() -> str | None:
    """Why this suite cannot run here, or None if it can."""
    if os.geteuid() != 0:
        return "netns tests need root"
    if shutil.which("ip") is None:
        return "netns tests need iproute2 (ip)"
    # Being root is not enough inside an unprivileged container: prove it.
    probe = f"{PREFIX}{os.getpid()}-probe"
    add = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    if add.returncode != 0:
        return f"'ip netns add' is unavailable: {add.stderr.strip()}"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # This hook sees every collected item, not only ours.
    mine = [item for item in items if HERE in item.path.parents]
    if not mine:
        return
    reason = unavailable_reason()
    for item in mine:
        item.add_marker(pytest.mark.netns)
        if reason:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session", autouse=True)
def _stale_namespaces() -> None:
    """Remove namespaces left behind by runs that died before closing their Lab."""
    if unavailable_reason() is None:
        cleanup_stale()


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    """A started seed Lab (node1, node2, client); closed even if the test fails."""
    with Lab(workdir=tmp_path) as started:
        yield started

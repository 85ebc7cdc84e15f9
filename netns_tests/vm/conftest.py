"""Fixtures for the IPVS suite: one fresh network namespace per test, ipvsadm as the oracle.

These tests need a kernel with IPVS. Where the running kernel has it (a user's machine),
they run right here; where it does not (CI, this project's dev machines), they are skipped
with that reason, and `netns_tests/vm/run.py` runs them in a virtme-ng guest instead
(`scripts/test` does both). Nothing is created in the root namespace.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path

import pytest

from ipvsctl.kernel import IpvsKernel, IpvsUnavailable

HERE = Path(__file__).parent
NS_PREFIX = "ipvst"
_ids = itertools.count()


def _run(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=check, timeout=120)


@cache
def unavailable_reason() -> str | None:
    if os.geteuid() != 0:
        return "IPVS tests need root"
    for tool in ("ip", "ipvsadm"):
        if shutil.which(tool) is None:
            return f"IPVS tests need {tool}"
    # Loading the module is what ipvsadm itself would do; it fails quietly if absent.
    _run("modprobe", "-q", "ip_vs", check=False)
    try:
        IpvsKernel().close()
    except IpvsUnavailable:
        return ("the running kernel has no IPVS; netns_tests/vm/run.py runs these tests in "
                "a virtme-ng guest (scripts/test does)")
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    mine = [item for item in items if HERE in item.path.parents]
    if not mine:
        return
    reason = unavailable_reason()
    for item in mine:
        if reason:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture
def ns() -> Iterator[str]:
    """A fresh namespace with lo up (IPVS refuses dests with EINVAL until lo is up)."""
    name = f"{NS_PREFIX}{os.getpid()}-{next(_ids)}"
    _run("ip", "netns", "add", name)
    try:
        _run("ip", "-n", name, "link", "set", "lo", "up")
        yield name
    finally:
        _run("ip", "netns", "del", name, check=False)


@pytest.fixture
def kernel(ns: str) -> Iterator[IpvsKernel]:
    with IpvsKernel(netns=ns) as k:
        yield k


@pytest.fixture
def ipvsadm(ns: str) -> Callable[..., str]:
    """Run ipvsadm in the test's namespace: the independent oracle."""

    def run(*args: str, check: bool = True) -> str:
        proc = _run("ip", "netns", "exec", ns, "ipvsadm", *args, check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"ipvsadm {' '.join(args)}: {proc.stderr.strip()}")
        return proc.stdout if check else proc.stdout + proc.stderr

    return run

"""Tracked commands run for real: status, timeout, process groups, bounded output."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path

import pytest

from pyvrrp.config.yaml_loader import load_yaml
from pyvrrp.core.events import SetFault, SetPriority
from pyvrrp.track.command import KEEP_OUTPUT, run_bounded, split_command
from pyvrrp.track.manager import TrackManager


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


async def test_exit_status_is_reported() -> None:
    assert (await run_bounded(["sh", "-c", "exit 3"], 5)).status == 3
    assert (await run_bounded(["true"], 5)).status == 0


async def test_missing_program_is_a_failure_not_an_exception() -> None:
    out = await run_bounded(["/nonexistent/check"], 5)
    assert out.status is None and "cannot run" in out.error


async def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    script = f"sleep 100 & echo $! >> {pids}; sleep 100 & echo $! >> {pids}; wait"
    start = time.monotonic()
    out = await run_bounded(["sh", "-c", script], 0.5)
    assert time.monotonic() - start < 2
    assert out.status is None and "timed out" in out.error
    children = [int(p) for p in pids.read_text().split()]
    assert len(children) == 2
    await asyncio.sleep(0.1)
    assert not any(alive(p) for p in children)


async def test_megabytes_of_output_are_drained_and_bounded() -> None:
    start = time.monotonic()
    out = await run_bounded(["sh", "-c", "head -c 20000000 /dev/zero; exit 0"], 10)
    assert out.status == 0
    assert len(out.output) == KEEP_OUTPUT
    assert time.monotonic() - start < 5


async def test_a_daemonised_child_does_not_hold_the_result(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    start = time.monotonic()
    out = await run_bounded(["sh", "-c", f"setsid sleep 30 & echo $! > {pidfile}; exit 0"], 5)
    took = time.monotonic() - start
    child = int(pidfile.read_text())
    try:
        assert out.status == 0 and took < 1.0
        assert alive(child), "a successful script's daemon (nginx restart) must survive"
    finally:
        os.kill(child, 9)


def test_commands_split_like_keepalived() -> None:
    assert split_command('/bin/check "a b" c') == ["/bin/check", "a b", "c"]


CONFIG = """
vrrp_script:
  chk:
    script: {script}
    interval: 1
    weight: -30
    fall: 2
    rise: 2
  gone:
    script: /nonexistent/check_nginx.sh
    weight: -50
vrrp_instance:
  VI_1:
    interface: eth0
    virtual_router_id: 50
    priority: 100
    virtual_ipaddress: [10.0.0.100/24]
    track_script: [chk, gone]
"""


async def test_manager_moves_priority_and_disables_missing_scripts(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    flag = tmp_path / "ok"
    flag.write_text("1")
    config, _ = load_yaml("t.yaml", CONFIG.format(script=f"/bin/test -f {flag}"))
    events: list[object] = []
    caplog.set_level(logging.INFO)
    manager = TrackManager(config)
    manager.add_instance(config.vrrp_instances[0], events.append)
    assert "Disabling track script gone since not found/accessible" in caplog.text
    assert "/nonexistent/check_nginx.sh" in caplog.text
    manager.start()
    try:
        await asyncio.sleep(0.5)
        assert events == []  # the first success leaves the priority as configured
        flag.unlink()
        for _ in range(40):
            await asyncio.sleep(0.1)
            if events:
                break
        assert events == [SetPriority(70, "tracking")]
        flag.write_text("1")
        for _ in range(40):
            await asyncio.sleep(0.1)
            if len(events) > 1:
                break
        assert events[1:] == [SetPriority(100, "tracking")]
        assert not any(isinstance(e, SetFault) for e in events)
    finally:
        manager.close()

"""The track manager with real scripts: priorities move, missing scripts are disabled.

(How a script is run, killed and drained is tested with the shared runner in
test_notify.py.)
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from pyvrrp.config.yaml_loader import load_yaml
from pyvrrp.core.events import SetFault, SetPriority
from pyvrrp.track.manager import TrackManager

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

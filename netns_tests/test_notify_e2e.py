"""Notify scripts and the notify FIFO, driven by real transitions of a running pyvrrp."""

from __future__ import annotations

import os
import time
from pathlib import Path

from pyvrrp.lab.speakers import VIP, Instance, Speaker
from pyvrrp.lab.topology import Lab, wait_for


def recorder(path: Path, log: Path) -> str:
    path.write_text(f'#!/bin/sh\necho "$@" >> {log}\n')
    path.chmod(0o755)
    return str(path)


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_notify_scripts_and_fifo_follow_the_transitions(lab: Lab) -> None:
    log = lab.workdir / "notified"
    script = recorder(lab.workdir / "notify.sh", log)
    fifo = lab.workdir / "events.fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    received = b""
    inst = Instance(priority=100, state="MASTER", global_extra={"notify_fifo": str(fifo)},
                    extra={"notify_master": f"{script} master",
                           "notify_backup": f"{script} backup",
                           "notify_fault": f"{script} fault",
                           "notify_stop": f"{script} stop",
                           "notify": f"{script} generic"})
    try:
        n1 = Speaker(lab, "node1", "pyvrrp", inst).start()
        assert wait_for(lambda: lab.holders(VIP) == ["node1"], 8), n1.log_text()
        lab.cut_link("node1")  # the instance's own interface: FAULT
        assert wait_for(lambda: "fault" in lines(log), 3), n1.log_text()
        assert wait_for(lambda: lab.holders(VIP) == [], 3), n1.log_text()
        lab.restore_link("node1")
        assert wait_for(lambda: lab.holders(VIP) == ["node1"], 8), n1.log_text()
        assert n1.stop() == 0
        time.sleep(0.3)
        while True:
            try:
                chunk = os.read(reader, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            received += chunk
    finally:
        os.close(reader)
    got = lines(log)
    specific = [x for x in got if not x.startswith("generic")]
    generic = [x for x in got if x.startswith("generic")]
    assert specific == ["backup", "master", "fault", "backup", "master", "stop"], got
    assert generic == [f"generic INSTANCE VI_1 {s} 100" for s in
                       ("BACKUP", "MASTER", "FAULT", "BACKUP", "MASTER", "STOP")], got
    fifo_lines = received.decode().splitlines()
    assert fifo_lines == [f'INSTANCE "VI_1" {s} 100' for s in
                          ("BACKUP", "MASTER", "FAULT", "BACKUP", "MASTER", "STOP")], fifo_lines

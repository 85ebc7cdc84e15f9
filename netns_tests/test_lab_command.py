"""`pyvrrp lab`, the README's main job, run as a user runs it."""

from __future__ import annotations

import subprocess
import sys

from pyvrrp.lab.topology import PREFIX


def test_pyvrrp_lab_runs_the_seed_failover_and_cleans_up() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "pyvrrp", "lab"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    assert "all steps as expected" in out
    assert out.count("OK ") == 5, out
    assert "FAIL" not in out
    left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert f"{PREFIX}{proc.pid}-" not in left, "the lab left namespaces behind"

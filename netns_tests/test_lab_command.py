"""`pyvrrp lab`, the README's main job, run as a user runs it."""

from __future__ import annotations

import subprocess
import sys

from pyvrrp.lab.topology import PREFIX


def test_pyvrrp_lab_runs_the_seed_failover_and_cleans_up() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "pyvrrp", "lab"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, out
    assert out.count("all steps as expected") == 2, out  # the VIP setup and the nginx one
    assert out.count("OK ") == 8, out
    assert "FAIL " not in out and "SOME STEPS FAILED" not in out
    left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert f"{PREFIX}{proc.pid}-" not in left, "the lab left namespaces behind"

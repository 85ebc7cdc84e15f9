"""The command line: `pyvrrp check` (text, --json, --strict, exit status), `pyvrrp convert`,
and `pyvrrp run` choosing the front end by content. Bad input gets one clear diagnostic
and no traceback: unterminated quote or block at the end, unbalanced braces, an include that
matches nothing, a binary file, a 10 MB config.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SEED = REPO / "config" / "keepalived" / "lvs-dr-ipport" / "node2"
GOOD = """vrrp_instance VI_1 {
    state BACKUP
    interface eth0
    virtual_router_id 50
    priority 80
    virtual_ipaddress {
        10.0.0.100/24
    }
}
"""


def pyvrrp(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pyvrrp.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=120, cwd=REPO)


def test_check_prints_file_line_col_and_exits_0_when_it_would_run() -> None:
    proc = pyvrrp("check", "--no-host", "--root", SEED, SEED / "etc/keepalived/keepalived.conf")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert f"{SEED}/etc/keepalived/conf.d/vip_nginx.conf:2:7: warning: (VI_1) unknown state " \
           "'BAKCUP', defaulting to BACKUP" in lines
    assert lines[-1].endswith("would run (0 errors, 3 warnings, 0 notes)")


def test_strict_turns_warnings_into_errors() -> None:
    proc = pyvrrp("check", "--strict", "--no-host", "--root", SEED,
                  SEED / "etc/keepalived/keepalived.conf")
    assert proc.returncode == 1
    assert ":2:7: error: (VI_1) unknown state 'BAKCUP'" in proc.stdout


def test_check_json() -> None:
    proc = pyvrrp("check", "--json", "--no-host", "--root", SEED,
                  SEED / "etc/keepalived/keepalived.conf")
    doc = json.loads(proc.stdout)
    assert (doc["format"], doc["runs"], doc["errors"], doc["warnings"]) == \
        ("keepalived", True, 0, 3)
    first = doc["diagnostics"][0]
    assert set(first) == {"file", "line", "col", "severity", "message"}


def test_check_accepts_yaml() -> None:
    proc = pyvrrp("check", "--no-host", REPO / "config" / "node1.yaml")
    assert proc.returncode == 0 and proc.stdout.strip().endswith("would run (0 errors, "
                                                                 "0 warnings, 0 notes)")


def test_check_refuses_with_exit_1(tmp_path: Path) -> None:
    conf = tmp_path / "k.conf"
    conf.write_text(GOOD.replace("    virtual_router_id 50\n", ""))
    proc = pyvrrp("check", "--no-host", conf)
    assert proc.returncode == 1
    assert f"{conf}:1:15: error: (VI_1) the virtual router id must be set" in proc.stdout


def test_check_looks_at_this_hosts_interfaces(tmp_path: Path) -> None:
    conf = tmp_path / "k.conf"
    conf.write_text(GOOD.replace("eth0", "nosuchif0"))
    proc = pyvrrp("check", conf)
    assert proc.returncode == 1 and ":3:15: error: interface nosuchif0 for vrrp_instance VI_1 " \
        "doesn't exist" in proc.stdout
    assert pyvrrp("check", "--no-host", conf).returncode == 0


def test_convert_writes_yaml_and_keepalived(tmp_path: Path) -> None:
    proc = pyvrrp("convert", "--root", SEED, SEED / "etc/keepalived/keepalived.conf",
                  "--to", "yaml", "-o", tmp_path / "n2.yaml")
    assert proc.returncode == 0, proc.stderr
    assert "unknown state 'BAKCUP'" in proc.stderr  # the source's warnings, on stderr
    back = pyvrrp("convert", tmp_path / "n2.yaml", "--to", "keepalived")
    assert back.returncode == 0 and "state BACKUP" in back.stdout and back.stderr == ""


def test_convert_refuses_a_config_that_cannot_run(tmp_path: Path) -> None:
    conf = tmp_path / "k.conf"
    conf.write_text(GOOD.replace("    priority 80\n", "    priority\n"))
    proc = pyvrrp("convert", conf, "--to", "yaml")
    assert proc.returncode == 2 and proc.stdout == ""
    assert f"{conf}:5:5: error: 'priority' is missing its value" in proc.stderr


def test_run_picks_keepalived_by_content_not_name(tmp_path: Path) -> None:
    conf = tmp_path / "node.yaml"  # keepalived.conf text under a YAML name
    conf.write_text(GOOD.replace("priority 80", "priority 300"))
    conf.write_text(GOOD.replace("    virtual_router_id 50\n", ""))
    proc = pyvrrp("run", conf)
    assert proc.returncode == 2
    assert f"{conf}:1:15: error: (VI_1) the virtual router id must be set" in proc.stderr
    assert "Traceback" not in proc.stderr


# -- bad input: one clear diagnostic each, no traceback ------------------------------------------


def _one(tmp_path: Path, name: str, data: bytes | str) -> tuple[int, list[str]]:
    path = tmp_path / name
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data)
    proc = pyvrrp("check", "--no-host", path)
    assert "Traceback" not in proc.stdout + proc.stderr
    found = [line for line in proc.stdout.splitlines()[:-1] if ": note: " not in line]
    return proc.returncode, found


@pytest.mark.parametrize(("name", "data", "rc", "where", "words"), [
    ("quote_eof.conf", GOOD + 'global_defs {\n    router_id node1\n}\nrouter_id "node1', 0,
     ":13:11: warning:", "unterminated quote"),
    ("block_eof.conf", GOOD + GOOD.replace("VI_1", "VI_2").replace("50", "51")[:-2], 0,
     ":10:1: warning:", "'vrrp_instance' block is not closed"),
    ("extra_close.conf", GOOD + "}\n", 0, ":10:1: warning:", "'}' without a matching '{'"),
    ("include.conf", "include conf.d/*.conf\n" + GOOD, 0, ":1:1: warning:",
     "include conf.d/*.conf matches no file"),
    ("binary.conf", b"\x7fELF\x02\x01\x01\0\0\0" * 100, 1, ":1:1: error:", "binary file"),
])
def test_bad_input_gets_one_clear_diagnostic(tmp_path: Path, name: str, data: bytes | str,
                                             rc: int, where: str, words: str) -> None:
    code, found = _one(tmp_path, name, data)
    assert code == rc
    (line,) = found
    assert where in line and words in line


def test_a_10_mb_config(tmp_path: Path) -> None:
    body = GOOD + "".join(f"! filler line {i:08d} " + "x" * 80 + "\n" for i in range(110_000))
    code, found = _one(tmp_path, "big.conf", body)
    assert code == 1
    (line,) = found
    assert ":1:1: error:" in line and "8 MiB" in line

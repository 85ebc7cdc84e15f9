"""YAML front end for tracking and notification keywords (keepalived's names)."""

from __future__ import annotations

import textwrap

import pytest

from pyvrrp.config.diagnostics import ConfigError
from pyvrrp.config.model import Track
from pyvrrp.config.yaml_loader import load_yaml

BASE = """
global_defs:
  smtp_server: 127.0.0.1 2525
  notification_email: [ops@example.org]
  script_user: nobody nogroup
vrrp_script:
  check_nginx:
    script: /etc/keepalived/check_nginx.sh
    interval: 1
    weight: -30
    fall: 3
    rise: 5
    timeout: 2
track_file:
  prio: {file: /run/prio, weight: 2, init_file: 0 overwrite}
vrrp_track_process:
  nginx: {process: nginx, weight: -20, quorum: 1, delay: 2}
vrrp_instance:
  VI_1:
    interface: eth0
    virtual_router_id: 50
    priority: PRIO
    virtual_ipaddress: [10.0.0.100/24]
    track_script: [check_nginx, "check_nginx weight -10 reverse"]
    track_interface: [eth1, "eth2 weight -20"]
    track_file: [prio]
    track_process: [nginx]
    notify_master: /etc/keepalived/notify.sh master
    notify: /etc/keepalived/notify-all.sh
"""


def load(text: str, prio: int = 100):  # type: ignore[no-untyped-def]
    return load_yaml("t.yaml", textwrap.dedent(text).replace("PRIO", str(prio)))


def where(text: str, needle: str) -> tuple[int, int]:
    """1-based line and column of `needle` in `text`, as an editor shows them."""
    at = text.index(needle)
    return text.count("\n", 0, at) + 1, at - text.rfind("\n", 0, at)


def test_the_seed_check_nginx_and_friends_load() -> None:
    config, diags = load(BASE)
    assert diags == []
    (script,) = config.vrrp_scripts
    assert (script.name, script.interval, script.weight, script.fall, script.rise,
            script.timeout) == ("check_nginx", 1, -30, 3, 5, 2)
    inst = config.vrrp_instances[0]
    assert [(t.name, t.weight, t.reverse) for t in inst.track_script] == \
        [("check_nginx", None, False), ("check_nginx", -10, True)]
    assert [(t.name, t.weight) for t in inst.track_interface] == [("eth1", None), ("eth2", -20)]
    assert config.track_files[0].init_file == 0 and config.track_files[0].init_overwrite
    assert config.track_processes[0].delay == 2
    assert inst.notify.master == "/etc/keepalived/notify.sh master"
    assert inst.notify.any == "/etc/keepalived/notify-all.sh"
    gd = config.global_defs
    assert (gd.smtp_server, gd.smtp_port, gd.script_user, gd.script_group) == \
        ("127.0.0.1", 2525, "nobody", "nogroup")


def test_an_owner_ignores_weights_with_a_warning() -> None:
    config, diags = load(BASE, prio=255)
    assert any("address owner" in d.message for d in diags)
    assert all(isinstance(t, Track) and not t.weight
               for t in config.vrrp_instances[0].track_script)


def test_an_undefined_track_script_is_a_warning_and_ignored() -> None:
    text = BASE.replace("[check_nginx, ", "[missing, ")
    config, diags = load(text)
    (warning,) = [d for d in diags if "missing" in d.message]
    assert warning.severity == "warning" and "not found, ignoring" in warning.message
    assert (warning.pos.line, warning.pos.col) == where(text, "missing")
    assert [t.name for t in config.vrrp_instances[0].track_script] == ["check_nginx"]


@pytest.mark.parametrize(("old", "new", "blamed", "message"), [
    ("    rise: 5", "    rize: 5", "rize", "unknown keyword 'rize' in vrrp_script check_nginx"),
    ("    weight: -30", "    weight: -300", "-300", "weight -300 is outside -253..253"),
    ('"eth2 weight -20"', '"eth2 wait -20"', '"eth2 wait', "expected 'NAME [weight N [reverse]]'"),
    ("    script: /etc/keepalived/check_nginx.sh\n", "", "check_nginx:", "needs 'script'"),
])
def test_errors_point_at_the_node(old: str, new: str, blamed: str, message: str) -> None:
    text = BASE.replace(old, new)
    with pytest.raises(ConfigError) as err:
        load(text)
    diag = err.value.diagnostics[-1]
    assert (diag.pos.line, diag.pos.col) == where(text, blamed), diag
    assert message in diag.message

"""config/node1.yaml and node2.yaml say exactly what the lab (and its tests) run."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from pyvrrp.config.yaml_loader import load_yaml
from pyvrrp.lab.speakers import Instance

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(("node", "priority", "state"),
                         [("node1", 100, "MASTER"), ("node2", 80, "BACKUP")])
def test_config_file_matches_lab_instance(node: str, priority: int, state: str) -> None:
    from_file, _ = load_yaml(ROOT / "config" / f"{node}.yaml")
    inst = Instance(priority=priority, state=state, router_id=f"{node}.qinglin.com")
    from_lab, _ = load_yaml("lab.yaml", yaml.safe_dump(inst.yaml_dict()))
    strip = lambda c: [replace(i, pos=None) for i in c.vrrp_instances]  # noqa: E731
    assert strip(from_file) == strip(from_lab)
    assert from_file.global_defs == from_lab.global_defs


@pytest.mark.parametrize("node", ["node1", "node2"])
def test_setup3_yaml_and_keepalived_forms_say_the_same(node: str) -> None:
    from pyvrrp.config.compare import without_positions
    from pyvrrp.config.loader import load_config

    as_yaml, _ = load_config(ROOT / "config" / "nginx-ha" / f"{node}.yaml")
    as_conf, _ = load_config(ROOT / "config" / "nginx-ha" / f"{node}.conf")
    assert without_positions(as_yaml) == without_positions(as_conf)
    (script,) = as_yaml.vrrp_scripts
    assert (script.interval, script.weight, script.fall, script.rise, script.timeout) == \
        (1, -30, 3, 5, 2)


@pytest.mark.parametrize("setup", ["lvs-dr-ipport", "lvs-dr-fwmark"])
@pytest.mark.parametrize("node", ["node1", "node2"])
def test_lvs_yaml_and_seed_keepalived_forms_say_the_same(setup: str, node: str) -> None:
    from pyvrrp.config.compare import without_positions
    from pyvrrp.config.loader import load_config
    from pyvrrp.config.parser import Options

    root = ROOT / "config" / "keepalived" / setup / node
    as_conf, _ = load_config(root / "etc/keepalived/keepalived.conf", Options(root=root))
    as_yaml, _ = load_config(ROOT / "config" / setup / f"{node}.yaml")
    (vs,) = as_yaml.virtual_servers
    if setup == "lvs-dr-fwmark":  # the YAML form's only addition: the mark rule
        assert vs.fwmark == 50 and vs.fwmark_rules is not None
        assert [str(v) for v in vs.fwmark_rules.vip] == ["10.0.0.100"]
        assert list(vs.fwmark_rules.ports) == [80, 443]
        as_yaml = replace(as_yaml, virtual_servers=(replace(vs, fwmark_rules=None),))
    assert without_positions(as_yaml) == without_positions(as_conf)
    assert len(as_conf.virtual_servers[0].real_server) == 2

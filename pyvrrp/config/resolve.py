"""Turn a configured vrrp_instance into the state machine's RouterConfig.

Instance settings override global_defs; `vrrp_min_garp` means one GARP and no second burst.
"""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import TypeVar

from pyvrrp.config.model import GlobalDefs, VrrpInstance
from pyvrrp.core.packet import AUTH_NONE, AUTH_PASS
from pyvrrp.core.router import RouterConfig
from pyvrrp.core.state import State

T = TypeVar("T")


def _pick(instance_value: T | None, global_value: T) -> T:
    return global_value if instance_value is None else instance_value


def router_config(inst: VrrpInstance, gd: GlobalDefs, primary_ip: IPv4Address) -> RouterConfig:
    version = inst.version or gd.vrrp_version
    delay = _pick(inst.garp_master_delay, gd.vrrp_garp_master_delay)
    repeat = _pick(inst.garp_master_repeat, gd.vrrp_garp_master_repeat)
    if gd.vrrp_min_garp:
        delay, repeat = 0.0, 1
    return RouterConfig(
        name=inst.name,
        vrid=inst.virtual_router_id,
        priority=inst.priority,
        primary_ip=primary_ip,
        vips=tuple(v.address for v in inst.virtual_ipaddress),
        initial_state=State[inst.state],
        version=version,
        interval_cs=round(inst.advert_int * 100),
        preempt=not inst.nopreempt,
        preempt_delay=inst.preempt_delay,
        auth_type=AUTH_PASS if inst.auth_type == "PASS" else AUTH_NONE,
        auth_pass=inst.auth_pass,
        skip_check_adv_addr=_pick(inst.skip_check_adv_addr, gd.vrrp_skip_check_adv_addr),
        lower_prio_no_advert=_pick(inst.lower_prio_no_advert, gd.vrrp_lower_prio_no_advert),
        higher_prio_send_advert=_pick(inst.higher_prio_send_advert,
                                      gd.vrrp_higher_prio_send_advert),
        down_timer_adverts=inst.down_timer_adverts,
        garp_master_delay=delay,
        garp_master_repeat=repeat,
        garp_master_refresh=_pick(inst.garp_master_refresh, gd.vrrp_garp_master_refresh),
        garp_master_refresh_repeat=_pick(inst.garp_master_refresh_repeat,
                                         gd.vrrp_garp_master_refresh_repeat),
        garp_lower_prio_repeat=_pick(inst.garp_lower_prio_repeat, gd.vrrp_garp_lower_prio_repeat),
        unicast_peers=inst.unicast_peer,
    )

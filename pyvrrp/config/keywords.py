"""The keepalived.conf keyword table: context, kind (arity), and whether pyvrrp lowers it.

This mirrors the install_keyword() tables of keepalived 2.2.7 as Debian builds it (VRRP,
LVS, BFD, VMAC, nftables, SNMP, DBus). A keyword keepalived does not know is "unknown"
here too, and one keepalived knows is never unknown, so the two agree on which lines draw
"Unknown keyword".

- kind: LINE (words on one line), BLOCK (a `{ }` of sub-keywords, table `sub`), VALUES
  (a `{ }` of free lines, such as virtual_ipaddress).
- args: how many words the keepalived handler reads unconditionally. keepalived exits when
  one is missing ("missing a parameter"), so fewer is an error.
- model: True when keepalived.py lowers it into the typed model; False when it is kept
  verbatim as a RawStatement and reported as "parsed, not supported".
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Kind(Enum):
    LINE = "line"
    BLOCK = "block"
    VALUES = "values"


@dataclass(frozen=True)
class Kw:
    name: str
    kind: Kind = Kind.LINE
    args: int = 0
    model: bool = False
    sub: str | None = None  # the table of a BLOCK keyword
    named: bool = False  # `keyword NAME {`: keepalived skips the block without exactly one name


L, B, V = Kind.LINE, Kind.BLOCK, Kind.VALUES


def _kws(*items: Kw | str) -> dict[str, Kw]:
    """A table; a bare string is a LINE keyword kept raw with no required argument."""
    out: dict[str, Kw] = {}
    for item in items:
        kw = Kw(item) if isinstance(item, str) else item
        out[kw.name] = kw
    return out


def m(name: str, kind: Kind = L, args: int = 0, sub: str | None = None,
      named: bool = False) -> Kw:
    """A keyword lowered into the model."""
    return Kw(name, kind, args, True, sub, named)


def r(name: str, kind: Kind = L, args: int = 0, sub: str | None = None,
      named: bool = False) -> Kw:
    """A keyword kept raw: parsed, not supported."""
    return Kw(name, kind, args, False, sub, named)


_NOTIFY = ("notify_master", "notify_backup", "notify_fault", "notify_stop", "notify")

TABLES: dict[str, dict[str, Kw]] = {}

TABLES["top"] = _kws(
    m("global_defs", B, sub="global_defs"),
    m("vrrp_instance", B, sub="vrrp_instance", named=True),
    m("vrrp_script", B, 1, sub="vrrp_script"),
    m("vrrp_sync_group", B, sub="vrrp_sync_group", named=True),
    m("track_file", B, 1, sub="track_file"),
    m("vrrp_track_file", B, 1, sub="track_file"),  # deprecated synonym
    m("vrrp_track_process", B, 1, sub="vrrp_track_process"),
    r("virtual_server", B, 1, sub="virtual_server"),
    r("virtual_server_group", V, 1),
    r("SSL", B, sub="SSL"),
    r("bfd_instance", B, 1, sub="bfd_instance"),
    r("track_group", B, sub="track_group", named=True),
    r("static_ipaddress", V), r("static_routes", V), r("static_rules", V),
    r("garp_group", B, sub="garp_group"),
    r("interface_up_down_delays", V),
    r("net_namespace", args=1), r("net_namespace_ipvs", args=0),
    "namespace_with_ipsets", "use_pid_dir", r("instance", args=1), r("child_wait_time", args=1),
)

TABLES["global_defs"] = _kws(
    m("router_id"), m("notification_email_from"), m("smtp_server", args=1),
    m("smtp_helo_name"), m("smtp_connect_timeout", args=1), m("notification_email", V),
    m("smtp_alert"), m("vrrp_mcast_group4", args=1), m("vrrp_garp_master_delay", args=1),
    m("vrrp_garp_master_repeat", args=1), m("vrrp_garp_master_refresh", args=1),
    m("vrrp_garp_master_refresh_repeat", args=1), m("vrrp_garp_lower_prio_repeat", args=1),
    m("vrrp_min_garp"), m("vrrp_lower_prio_no_advert"), m("vrrp_higher_prio_send_advert"),
    m("vrrp_version", args=1), m("vrrp_skip_check_adv_addr"), m("vrrp_strict"),
    m("script_user"), m("enable_script_security"), m("notify_fifo"),
    m("vrrp_notify_fifo"), m("dynamic_interfaces"),
    "process_names", r("process_name", args=1), r("vrrp_process_name", args=1),
    r("checker_process_name", args=1), r("lvs_process_name", args=1),
    r("bfd_process_name", args=1), r("startup_script", args=1),
    r("startup_script_timeout", args=1), r("shutdown_script", args=1),
    r("shutdown_script_timeout", args=1), "max_auto_priority", "min_auto_priority_delay",
    "smtp_alert_vrrp", "smtp_alert_checker", "checker_log_all_failures", "no_email_faults",
    r("default_interface", args=1), "disable_local_igmp", "lvs_timeouts", "lvs_flush",
    "lvs_flush_on_stop", "lvs_flush_onstop", r("lvs_sync_daemon", args=1),
    r("vrrp_mcast_group6", args=1), r("vrrp_garp_lower_prio_delay", args=1),
    r("vrrp_down_timer_adverts", args=1), r("vrrp_garp_interval", args=1),
    r("vrrp_gna_interval", args=1), "vrrp_garp_extra_if", "vrrp_vmac_garp_intvl",
    "vrrp_iptables", "nftables", r("nftables_priority", args=1), "nftables_ifindex",
    "nftables_ipvs", r("nftables_ipvs_priority", args=1),
    r("nftables_ipvs_start_fwmark", args=1), "nftables_counters", "vrrp_check_unicast_src",
    "vrrp_priority", "vrrp_no_swap", "vrrp_rt_priority", r("vrrp_cpu_affinity", args=1),
    r("vrrp_rlimit_rttime", args=1), r("vrrp_rlimit_rtime", args=1),
    r("notify_fifo_script", args=1), r("vrrp_notify_fifo_script", args=1),
    "vrrp_notify_priority_changes", "fifo_write_vrrp_states_on_reload",
    r("lvs_notify_fifo", args=1), r("lvs_notify_fifo_script", args=1), "checker_priority",
    "checker_no_swap", "checker_rt_priority", r("checker_cpu_affinity", args=1),
    r("checker_rlimit_rttime", args=1), r("checker_rlimit_rtime", args=1), "bfd_priority",
    "bfd_no_swap", "bfd_rt_priority", r("bfd_cpu_affinity", args=1),
    r("bfd_rlimit_rttime", args=1), r("bfd_rlimit_rtime", args=1), "snmp_socket",
    "enable_traps", "enable_snmp_vrrp", "enable_snmp_keepalived", "enable_snmp_rfc",
    "enable_snmp_rfcv2", "enable_snmp_rfcv3", "enable_snmp_checker", "enable_dbus",
    r("dbus_service_name", args=1), "vrrp_netlink_cmd_rcv_bufs",
    "vrrp_netlink_cmd_rcv_bufs_force", "vrrp_netlink_monitor_rcv_bufs",
    "vrrp_netlink_monitor_rcv_bufs_force", "process_monitor_rcv_bufs",
    "process_monitor_rcv_bufs_force", "lvs_netlink_cmd_rcv_bufs",
    "lvs_netlink_cmd_rcv_bufs_force", "lvs_netlink_monitor_rcv_bufs",
    "lvs_netlink_monitor_rcv_bufs_force", "rs_init_notifies", "no_checker_emails",
    r("vrrp_rx_bufs_policy", args=1), r("vrrp_rx_bufs_multiplier", args=1),
    r("vrrp_startup_delay", args=1), "log_unknown_vrids", r("vmac_prefix", args=1),
    r("vmac_addr_prefix", args=1), r("umask", args=1), r("random_seed", args=1),
    "reload_check_config", r("reload_time_file", args=1), r("reload_repeat", args=1),
    r("reload_file", args=1), r("include_check", args=1), r("config_save_dir", args=1),
    "tmp_config_directory", "data_use_instance",
)

TABLES["vrrp_instance"] = _kws(
    m("state", args=1), m("interface", args=1), m("virtual_router_id", args=1),
    m("priority", args=1), m("advert_int", args=1), m("version", args=1), m("nopreempt"),
    m("preempt"), m("preempt_delay", args=1), m("authentication", B, sub="authentication"),
    m("virtual_ipaddress", V), m("mcast_src_ip", args=1), m("unicast_src_ip", args=1),
    m("unicast_peer", V), m("skip_check_adv_addr"), m("lower_prio_no_advert"),
    m("higher_prio_send_advert"), m("down_timer_adverts", args=1),
    m("garp_master_delay", args=1), m("garp_master_repeat", args=1),
    m("garp_master_refresh", args=1), m("garp_master_refresh_repeat", args=1),
    m("garp_lower_prio_repeat", args=1), m("track_script", V), m("track_interface", V),
    m("track_file", V), m("track_process", V), *(m(n, args=1) for n in _NOTIFY),
    m("notify_master_rx_lower_pri", args=1), m("smtp_alert"),
    "use_vmac", "use_vmac_addr", "vmac_xmit_base", "use_ipvlan", "unicast_fault_no_peer",
    "check_unicast_src", "old_unicast_checksum", "native_ipv6", r("vrf", args=1),
    "dont_track_primary", r("track_bfd", V), r("mcast_dst_ip", args=1), "track_src_ip",
    r("unicast_ttl", args=1), r("virtual_ipaddress_excluded", V), "promote_secondaries",
    r("virtual_routes", V), r("virtual_rules", V), "accept", "no_accept", "strict_mode",
    r("debug", args=1), "notify_deleted", "notify_priority_changes",
    r("lvs_sync_daemon_interface", args=1), r("garp_lower_prio_delay", args=1),
    "garp_extra_if", "vmac_garp_intvl", "kernel_rx_buf_size",
)

TABLES["authentication"] = _kws(m("auth_type", args=1), m("auth_pass", args=1))

TABLES["vrrp_script"] = _kws(
    m("script"), m("interval", args=1), m("timeout", args=1), m("weight", args=1),
    m("rise", args=1), m("fall", args=1), m("user", args=1), m("init_fail"),
)

TABLES["vrrp_sync_group"] = _kws(
    m("group", V), m("track_interface", V), m("track_script", V), m("track_file", V),
    m("track_process", V), r("track_bfd", V), *(m(n, args=1) for n in _NOTIFY),
    m("smtp_alert"), m("global_tracking"), m("sync_group_tracking_weight"),
    m("notify_priority_changes"),
)

TABLES["track_file"] = _kws(m("file"), m("weight"), m("init_file"))

TABLES["vrrp_track_process"] = _kws(
    m("process", args=1), m("param_match"), m("weight"), m("quorum", args=1),
    m("quorum_max", args=1), m("delay", args=1), m("terminate_delay", args=1),
    m("fork_delay", args=1), m("full_command"),
)

TABLES["track_group"] = _kws(r("group", V))
TABLES["garp_group"] = _kws(r("garp_interval", args=1), r("gna_interval", args=1),
                            r("interface", args=1), r("interfaces", V))
TABLES["SSL"] = _kws(r("password", args=1), r("ca", args=1), r("certificate", args=1),
                     r("key", args=1))
TABLES["bfd_instance"] = _kws(
    r("source_ip", args=1), r("neighbor_ip", args=1), r("neighbour_ip", args=1),
    r("min_rx", args=1), r("min_tx", args=1), r("idle_tx", args=1),
    r("multiplier", args=1), "passive", r("ttl", args=1), r("hoplimit", args=1),
    r("max_hops", args=1), r("weight", args=1), "vrrp", "checker",
)

# -- the checker side: virtual_server, real_server and the checkers ---------------------------

_CHECK_COMMON = ("retry", "delay_before_retry", "warmup", "delay_loop", "alpha",
                 "log_all_failures")
_CONNECTION = ("connect_ip", "connect_port", "bindto", "bind_port", "bind_if",
               "connect_timeout", "fwmark")

CHECKERS = ("HTTP_GET", "SSL_GET", "TCP_CHECK", "MISC_CHECK", "SMTP_CHECK", "DNS_CHECK",
            "UDP_CHECK", "PING_CHECK", "FILE_CHECK", "BFD_CHECK")


def _checker(*extra: Kw | str, connection: bool = True) -> dict[str, Kw]:
    common = [r(n, args=0 if n == "alpha" else 1) for n in _CHECK_COMMON]
    conn = [r(n, args=1) for n in _CONNECTION] if connection else []
    return _kws(*conn, *common, *extra)


TABLES["HTTP_GET"] = _checker(
    r("nb_get_retry", args=1), r("virtualhost", args=1), r("http_protocol", args=1),
    "enable_sni", "fast_recovery", r("url", B, sub="url"),
)
TABLES["url"] = _kws(
    r("path", args=1), r("digest", args=1), r("status_code", args=1),
    r("virtualhost", args=1), r("regex", args=1), "regex_no_match",
    r("regex_options", args=1), r("regex_min_offset", args=1),
    r("regex_max_offset", args=1), r("regex_stack", args=1),
)
TABLES["TCP_CHECK"] = _checker()
TABLES["PING_CHECK"] = _checker()
TABLES["MISC_CHECK"] = _checker(r("misc_path", args=1), r("misc_timeout", args=1),
                                "misc_dynamic", r("user", args=1), connection=False)
TABLES["SMTP_CHECK"] = _checker(r("helo_name", args=1), r("host", B, sub="smtp_host"))
TABLES["smtp_host"] = _checker()
TABLES["DNS_CHECK"] = _checker(r("type", args=1), r("name", args=1))
TABLES["UDP_CHECK"] = _checker(r("payload", args=1), "require_reply",
                               r("min_reply_length", args=1), r("max_reply_length", args=1))
TABLES["FILE_CHECK"] = _kws(r("track_file", args=1), "weight")
TABLES["BFD_CHECK"] = _kws(r("name", args=1), "alpha")

_CHECKER_KWS = [r(name, B, sub="HTTP_GET" if name == "SSL_GET" else name) for name in CHECKERS]

TABLES["real_server"] = _kws(
    r("weight", args=1), r("lvs_method", args=1), r("uthreshold", args=1),
    r("lthreshold", args=1), "inhibit_on_failure", r("notify_up", args=1),
    r("notify_down", args=1), "alpha", r("retry", args=1),
    r("delay_before_retry", args=1), r("warmup", args=1), r("connect_timeout", args=1),
    r("delay_loop", args=1), "smtp_alert", r("virtualhost", args=1),
    r("snmp_name", args=1), *_CHECKER_KWS,
)

TABLES["virtual_server"] = _kws(
    r("ip_family", args=1), r("retry", args=1), r("delay_before_retry", args=1),
    r("warmup", args=1), r("connect_timeout", args=1), r("delay_loop", args=1),
    "inhibit_on_failure", r("lb_algo", args=1), r("lvs_sched", args=1), "hashed", "ops",
    "flag-1", "flag-2", "flag-3", "sh-port", "sh-fallback", "mh-port", "mh-fallback",
    r("lb_kind", args=1), r("lvs_method", args=1), r("persistence_engine", args=1),
    "persistence_timeout", r("persistence_granularity", args=1), r("protocol", args=1),
    "ha_suspend", "smtp_alert", r("virtualhost", args=1), r("snmp_name", args=1), "alpha",
    "omega", r("quorum_up", args=1), r("quorum_down", args=1), r("quorum", args=1),
    r("hysteresis", args=1), r("weight", args=1), r("sorry_server", args=1),
    "sorry_server_inhibit", r("sorry_server_lvs_method", args=1),
    r("real_server", B, 1, sub="real_server"),
)


def _no_args(context: str, *names: str) -> None:
    """Keywords whose keepalived handler checks for its value itself (checked against
    Debian's keepalived 2.2.7 with `keepalived -t`, one keyword at a time)."""
    for name in names:
        kw = TABLES[context][name]
        TABLES[context][name] = Kw(kw.name, kw.kind, 0, kw.model, kw.sub, kw.named)


_no_args("top", "net_namespace", "instance")
_no_args("global_defs", "startup_script", "startup_script_timeout", "shutdown_script",
         "shutdown_script_timeout", "default_interface", "lvs_sync_daemon", "vrrp_cpu_affinity",
         "notify_fifo_script", "vrrp_notify_fifo_script", "lvs_notify_fifo",
         "lvs_notify_fifo_script", "checker_cpu_affinity", "bfd_cpu_affinity",
         "dbus_service_name", "vrrp_rx_bufs_policy", "vrrp_rx_bufs_multiplier",
         "reload_time_file", "reload_repeat", "reload_file", "include_check")
_no_args("SSL", "password", "ca", "certificate", "key")
for _ctx in ("TCP_CHECK", "PING_CHECK", "MISC_CHECK", "SMTP_CHECK", "smtp_host", "DNS_CHECK",
             "UDP_CHECK"):
    _no_args(_ctx, "log_all_failures")
_no_args("MISC_CHECK", "misc_path", "user")
_no_args("SMTP_CHECK", "helo_name")
_no_args("UDP_CHECK", "payload")
_no_args("BFD_CHECK", "name")
_no_args("real_server", "virtualhost", "snmp_name")
_no_args("virtual_server", "virtualhost", "snmp_name", "sorry_server_lvs_method")


def lookup(context: str, name: str) -> Kw | None:
    return TABLES[context].get(name)

"""RFC 3768 / 5798 timer formulas, in seconds."""

from __future__ import annotations


def skew_time(priority: int, master_adver_int: float, version: int) -> float:
    """v2: (256 - priority) / 256 s; v3 scales it by the master's advert interval."""
    scale = 1.0 if version == 2 else master_adver_int
    return (256 - priority) * scale / 256


def master_down_interval(
    priority: int, master_adver_int: float, version: int, down_timer_adverts: int = 3
) -> float:
    """down_timer_adverts x interval + Skew_Time (the RFC fixes down_timer_adverts at 3)."""
    return down_timer_adverts * master_adver_int + skew_time(priority, master_adver_int, version)

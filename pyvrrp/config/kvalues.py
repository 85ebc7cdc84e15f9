"""Reading numbers, booleans and addresses the way keepalived 2.2.7 does (lib/parser.c).

Each reader returns the value (or None) and, when something is wrong, the reason as a
phrase, so the caller can say what keepalived does about it in one message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address

UINT_MAX = 2**32 - 1
INT_MAX = 2**31 - 1
TIMER_HZ = 1_000_000  # keepalived keeps times in microseconds

_UINT = re.compile(r"[ \t\f\n\r\v]*\+?[0-9]+")
_INT = re.compile(r"[ \t\f\n\r\v]*[+-]?[0-9]+")
_DECIMAL = re.compile(r"[0-9]*(\.[0-9]*)?")


@dataclass(frozen=True)
class Num:
    value: float | None  # None: keepalived rejects the value
    problem: str | None = None  # set with a value too: accepted with a warning


def read_uint(s: str, lo: int, hi: int) -> Num:
    if s.lstrip(" \t").startswith("-"):
        return Num(None, f"'{s}' is negative")
    if not _UINT.fullmatch(s):
        return Num(None, f"'{s}' is not a number")
    v = int(s)
    if v > UINT_MAX:
        return Num(None, f"'{s}' is outside the unsigned integer range")
    if not lo <= v <= hi:
        return Num(None, f"'{s}' is outside [{lo}, {hi}]")
    return Num(v)


def read_int(s: str, lo: int, hi: int) -> Num:
    if not _INT.fullmatch(s):
        return Num(None, f"'{s}' is not a number")
    v = int(s)
    if not lo <= v <= hi:
        return Num(None, f"'{s}' is outside [{lo}, {hi}]")
    return Num(v)


def read_decimal(s: str, lo: float, hi: float, digits: int = 6) -> Num:
    """keepalived's read_decimal_unsigned(): up to `digits` decimal places; more are
    rounded with a complaint."""
    if s.startswith("-"):
        return Num(None, f"'{s}' is negative")
    if not s or not _DECIMAL.fullmatch(s) or s == ".":
        return Num(None, f"'{s}' is not a number")
    whole, _, frac = s.partition(".")
    problem = None
    scaled = int((whole or "0") + frac[:digits].ljust(digits, "0"))
    if len(frac) > digits:
        problem = f"'{s}' has too many decimal places"
        scaled += frac[digits] >= "5"
    v = scaled / 10**digits
    if not lo <= v <= hi:
        return Num(None, f"'{s}' is outside [{lo:g}, {hi:g}]")
    return Num(v, problem)


def read_bool(s: str) -> bool | None:
    """keepalived's check_true_false(): case-sensitive on/true/yes, off/false/no."""
    if s in ("true", "on", "yes"):
        return True
    if s in ("false", "off", "no"):
        return False
    return None


def read_ip(s: str) -> IPv4Address | IPv6Address | None:
    """inet_stosockaddr(): an IPv4 or IPv6 address, or None."""
    try:
        return ip_address(s)
    except ValueError:
        return None


def seconds(v: float) -> float | int:
    """A whole number of seconds as int, so it prints as `3`, not `3.0`."""
    return int(v) if v == int(v) else v

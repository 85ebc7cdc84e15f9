"""Compare configs by meaning: where a line sits in the file does not matter."""

from __future__ import annotations

from dataclasses import fields, is_dataclass, replace
from typing import Any

from pyvrrp.config.model import Pos


def without_positions(obj: Any) -> Any:
    """The same value with every Pos (and the config's source name, and ipvsctl's `where`
    strings) blanked, recursively."""
    if isinstance(obj, Pos):
        return None
    if isinstance(obj, tuple):
        return tuple(without_positions(x) for x in obj)
    if is_dataclass(obj) and not isinstance(obj, type):
        changes = {f.name: without_positions(getattr(obj, f.name)) for f in fields(obj)
                   if f.init}
        for name in ("source", "where"):
            if isinstance(changes.get(name), str):
                changes[name] = ""
        return replace(obj, **changes)
    return obj


def same(a: Any, b: Any) -> bool:
    return bool(without_positions(a) == without_positions(b))

"""`pyvrrp convert CONFIG --to yaml|keepalived`: render the model, then prove it lossless.

The output is read back with the other front end's loader, and the two models must be
equal apart from positions; if not, the conversion fails and says where they differ
(for example a YAML-only `skip_check_adv_addr: false`, which keepalived.conf cannot say).
"""

from __future__ import annotations

from dataclasses import fields, is_dataclass, replace
from pathlib import Path
from typing import Any

from pyvrrp.config.diagnostics import ConfigError, Diagnostic
from pyvrrp.config.keepalived import load_keepalived
from pyvrrp.config.loader import load_config
from pyvrrp.config.model import Config, Pos
from pyvrrp.config.parser import Options
from pyvrrp.config.render import to_keepalived, to_yaml
from pyvrrp.config.yaml_loader import load_yaml

FORMATS = ("yaml", "keepalived")


def comparable(obj: Any) -> Any:
    """The model with positions and the source file name blanked out."""
    if isinstance(obj, Pos):
        return None
    if is_dataclass(obj) and not isinstance(obj, type):
        changes = {f.name: comparable(getattr(obj, f.name)) for f in fields(obj)}
        if isinstance(obj, Config):
            changes["source"] = ""
        if "where" in changes and isinstance(changes["where"], str):
            changes["where"] = ""  # ipvsctl's VirtualServer keeps its position as text
        return replace(obj, **changes)
    if isinstance(obj, tuple):
        return tuple(comparable(x) for x in obj)
    return obj


def first_difference(a: Any, b: Any, path: str = "config") -> str | None:
    if type(a) is not type(b):
        return f"{path}: {a!r} != {b!r}"
    if is_dataclass(a) and not isinstance(a, type):
        for f in fields(a):
            found = first_difference(getattr(a, f.name), getattr(b, f.name),
                                     f"{path}.{f.name}")
            if found:
                return found
        return None
    if isinstance(a, tuple):
        if len(a) != len(b):
            return f"{path}: {len(a)} entries != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            found = first_difference(x, y, f"{path}[{i}]")
            if found:
                return found
        return None
    return None if a == b else f"{path}: {a!r} != {b!r}"


def render(config: Config, to: str) -> str:
    return to_yaml(config) if to == "yaml" else to_keepalived(config)


def read_back(text: str, to: str, name: str = "<converted>") -> Config:
    if to == "yaml":
        return load_yaml(name, text)[0]
    return load_keepalived(name, text, Options(config_id=""))[0]


def convert(path: str | Path, to: str, options: Options | None = None
            ) -> tuple[str, list[Diagnostic]]:
    """The converted text and the source's diagnostics; ConfigError if the source cannot
    run or the conversion would lose something."""
    config, diags = load_config(path, options)
    text = render(config, to)
    at = Pos(str(path), 1, 1)
    try:
        back = read_back(text, to)
    except ConfigError as err:
        raise ConfigError([*diags, Diagnostic(at, "error", "the converted config does not load: "
                                              + "; ".join(d.message for d in err.diagnostics
                                                          if d.severity == "error"))]) from None
    diff = first_difference(comparable(config), comparable(back))
    if diff:
        raise ConfigError([*diags, Diagnostic(at, "error", f"cannot convert to {to} without "
                                              f"loss: {diff}")])
    return text, diags

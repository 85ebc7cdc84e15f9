"""Reading a PyYAML node tree with positions: the part ipvsctl's YAML reader
(ipvsctl/config.py) and pyvrrp's (pyvrrp/config/yaml_loader.py) share, so both halves of
one config file judge a value the same way and say so with the same words.

A subclass says how a problem is carried (`error`, `warn`); the converters here take the
key (for messages) and the value node, and raise what `error` returns.
"""

from __future__ import annotations

import yaml

Node = yaml.Node


class NodeReader:
    def __init__(self, source: str) -> None:
        self.source = source

    @staticmethod
    def line_col(node: Node) -> tuple[int, int]:
        return node.start_mark.line + 1, node.start_mark.column + 1

    def fail(self, node: Node, message: str) -> Exception:
        """The exception for an error at `node` (the caller raises it)."""
        raise NotImplementedError

    def warn(self, node: Node, message: str) -> None:
        raise NotImplementedError

    @staticmethod
    def is_null(node: Node) -> bool:
        """`key:` with nothing after it (or `~`, `null`)."""
        return isinstance(node, yaml.ScalarNode) and node.tag.endswith("null")

    def scalar(self, key: str, node: Node) -> str:
        if not isinstance(node, yaml.ScalarNode) or node.value == "":
            raise self.fail(node, f"'{key}' needs a single value")
        return str(node.value)

    def integer(self, key: str, node: Node, lo: int, hi: int) -> int:
        raw = self.scalar(key, node)
        try:
            value = int(raw)
        except ValueError:
            raise self.fail(node, f"'{key}' must be an integer, got '{raw}'") from None
        if not lo <= value <= hi:
            raise self.fail(node, f"'{key}' {value} is outside {lo}..{hi}")
        return value

    def number(self, key: str, node: Node, lo: float, hi: float) -> float:
        raw = self.scalar(key, node)
        try:
            value = float(raw)
        except ValueError:
            raise self.fail(node, f"'{key}' must be a number, got '{raw}'") from None
        if not lo <= value <= hi:
            raise self.fail(node, f"'{key}' {raw} is outside {lo:g}..{hi:g}")
        return value

    def boolean(self, key: str, node: Node) -> bool:
        if self.is_null(node):
            return True  # `nopreempt:` or `ops:` alone, as keepalived's bare keyword
        raw = self.scalar(key, node).lower()
        if raw in ("true", "yes", "on", "1"):
            return True
        if raw in ("false", "no", "off", "0"):
            return False
        raise self.fail(node, f"'{key}' must be true or false, got '{raw}'")

    def mapping(self, key: str, node: Node) -> list[tuple[Node, Node]]:
        if self.is_null(node):
            return []
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, f"'{key}' must be a mapping")
        seen: set[str] = set()
        for k, _ in node.value:
            if k.value in seen:
                raise self.fail(k, f"'{k.value}' given twice in '{key}'")
            seen.add(k.value)
        return list(node.value)

    @staticmethod
    def one_or_many(node: Node) -> list[Node]:
        """A list's entries, or the node itself: a single entry (a value or a block) may
        be written without a list."""
        return list(node.value) if isinstance(node, yaml.SequenceNode) else [node]

    def sequence(self, key: str, node: Node) -> list[Node]:
        """A list of values (a single value alone too); nothing after the key is none."""
        if self.is_null(node):
            return []
        if isinstance(node, yaml.MappingNode):
            raise self.fail(node, f"'{key}' must be a list")
        return self.one_or_many(node)

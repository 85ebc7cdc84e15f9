"""keepalived.conf -> a tree of statements, read as keepalived 2.2.7 reads it.

Two stages, both keeping file:line:col:

1. `Reader` turns files into logical lines (`Segment`s): it follows `include` (globs,
   relative to the including file, no chdir; a root for absolute paths), keeps
   `$NAME=value` definitions and expands `$NAME` / `${NAME}`, and drops `@id` lines that are
   not for this host, as keepalived's read_line() does.
2. `parse()` walks the segments with the keyword table (keywords.py), as keepalived's
   process_stream() does: the table, not the braces alone, decides what opens a block.
   Structural trouble (unknown keyword, stray brace, unclosed block, missing parameter) is
   reported and parsing goes on.
"""

from __future__ import annotations

import glob
import os
import random
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pyvrrp.config.host import Host
from pyvrrp.config.keywords import TABLES, Kind, Kw
from pyvrrp.config.lexer import Segment, Text, Word, decomment, split_braces, split_words
from pyvrrp.config.model import Pos
from pyvrrp.config.report import Report

MAX_LINE = 1023  # keepalived reads lines with fgets() into a 1024-byte buffer
MAX_CONFIG_BYTES = 8 << 20  # all files together; a bigger "config" is a mistake
MAX_EXPANSIONS = 32  # $NAME inside $NAME: keepalived would loop for ever


@dataclass
class Stmt:
    """One keyword line; `block` for BLOCK keywords, `values` for VALUES keywords."""

    keyword: Word
    args: tuple[Word, ...]
    text: str
    kw: Kw
    context: str
    block: list[Stmt] | None = None
    values: list[Segment] | None = None
    skipped: bool = False  # keepalived skips the block (no name, or a name used twice)
    incomplete: bool = False  # a required value is missing (reported; keepalived stops)
    dropped: set[str] = field(default_factory=set)  # incomplete sub-keywords, left out

    @property
    def pos(self) -> Pos:
        return self.keyword.pos

    @property
    def name(self) -> str:
        return self.keyword.text

    def arg(self, i: int) -> str | None:
        return self.args[i].text if i < len(self.args) else None


@dataclass
class _Def:
    lines: list[str]
    multiline: bool


@dataclass
class Options:
    root: Path | None = None  # absolute include paths are looked up under this directory
    config_id: str | None = None  # for `@id` lines; keepalived defaults to the short host name
    host: Host | None = None  # check interfaces as keepalived -t does; None: don't


def default_config_id() -> str:
    return socket.gethostname().split(".", 1)[0]


class Reader:
    """Files -> logical lines, following includes and definitions."""

    def __init__(self, report: Report, options: Options) -> None:
        self.report = report
        self.root = options.root
        self.config_id = options.config_id if options.config_id is not None \
            else default_config_id()
        self.defs: dict[str, _Def] = {
            "_HASH": _Def(["#"], False), "_BANG": _Def(["!"], False),
            "_INSTANCE": _Def([self.config_id], False),
        }
        self.stack: list[str] = []  # real paths of the files being read, for cycles
        self.total = 0
        self.files: list[str] = []
        self._open_def: _Def | None = None

    # -- files ---------------------------------------------------------------------------

    def read_file(self, shown: str, path: Path, at: Pos | None,
                  text: str | None = None) -> Iterator[Segment]:
        where = at or Pos(shown, 1, 1)
        real = os.path.realpath(path)
        if real in self.stack:
            chain = " -> ".join([*self.stack[self.stack.index(real):], real])
            self.report.error(where, f"include cycle: {chain}")
            return
        if text is None:
            loaded = self._load(shown, path, where)
            if loaded is None:
                return
            text = loaded
        self.files.append(shown)
        self.stack.append(real)
        try:
            for lineno, raw in enumerate(text.split("\n"), 1):
                raw = raw.rstrip("\r\n")
                if len(raw) > MAX_LINE:
                    self.report.lexical(
                        Pos(shown, lineno, MAX_LINE + 1), "warning",
                        f"line is {len(raw)} characters long; keepalived reads at most "
                        f"{MAX_LINE} at a time and takes the rest as new lines")
                for start in range(0, max(len(raw), 1), MAX_LINE):
                    piece = Text.of(raw[start:start + MAX_LINE], start)
                    yield from self._line(piece, shown, lineno, os.path.dirname(path))
        finally:
            self.stack.pop()

    def _load(self, shown: str, path: Path, where: Pos) -> str | None:
        try:
            size = path.stat().st_size
            if self.total + size > MAX_CONFIG_BYTES:
                self.report.error(where, f"{shown} is {size} bytes; pyvrrp reads at most "
                                  f"{MAX_CONFIG_BYTES >> 20} MiB of config in all")
                return None
            data = path.read_bytes()
        except OSError as err:
            self.report.error(where, f"cannot read {shown}: {err.strerror}")
            return None
        self.total += len(data)
        if b"\0" in data:
            self.report.error(where, f"{shown} is a binary file, not a config")
            return None
        return data.decode("utf-8", "surrogateescape")

    # -- one physical line -----------------------------------------------------------------

    def _line(self, t: Text, file: str, lineno: int, here: str) -> Iterator[Segment]:
        if self._open_def is not None:
            self._continue_def(t)
            return
        t, quote = decomment(t)
        if quote is not None:
            self.report.lexical(Pos(file, lineno, quote + 1), "warning",
                                "unterminated quote: keepalived drops the rest of the line")
        extra: list[Text] = []  # the other lines of multi-line definitions, read after this
        for _ in range(MAX_EXPANSIONS):
            if not t.s:
                break
            if t.s[0] == "@":
                t = self._conditional(t)
                continue
            if t.s[0] == "$" and self._define(t):
                return
            if t.s.startswith(("~SEQ", "~LST")):
                self.report.error(Pos(file, lineno, t.cols[0] + 1),
                                  f"{t.s[:4]} is not supported by pyvrrp")
                return
            if t.s[0] == "~" or "$" not in t.s:
                break
            expanded, more = self._expand(t)
            if expanded is None:
                break
            t, _ = decomment(expanded)
            extra += more
        else:
            self.report.error(Pos(file, lineno, t.cols[0] + 1),
                              "definitions expand into each other without end")
            return
        yield from self._segments(t, quote, file, lineno, here)
        for line in extra:
            yield from self._line(line, file, lineno, here)

    def _segments(self, t: Text, quote: int | None, file: str, lineno: int,
                  here: str) -> Iterator[Segment]:
        if not t.s:
            return
        include = _include_of(t.s)
        if include is not None:
            kind, pattern = include
            yield from self._include(kind, pattern, Pos(file, lineno, t.cols[0] + 1), here)
            return
        for part in split_braces(t):
            words, unmatched = split_words(part)
            if unmatched is not None and quote is None:
                self.report.lexical(Pos(file, lineno, unmatched + 1), "warning",
                                    "unmatched quote: keepalived drops the rest of the line")
            if words:
                yield Segment(tuple(Word(w, file, lineno, c + 1) for w, c in words), part.s)

    def _conditional(self, t: Text) -> Text:
        """`@id line` is read only when id is this host's config id; `@^id` when it is not."""
        neg = t.s.startswith("@^")
        start = 2 if neg else 1
        cut = next((i for i in range(start, len(t.s)) if t.s[i] in " \t"), None)
        if cut is None:
            return t[0:0]
        if (t.s[start:cut] == self.config_id) == neg:
            return t[0:0]
        return t[cut:].strip()

    def _define(self, t: Text) -> bool:
        """`$NAME=value`, with a trailing backslash continuing the value on the next line."""
        s = t.s
        if len(s) < 2 or not (s[1].isalpha() or s[1] == "_"):
            return False
        eq = s.find("=")
        if eq < 0 or not all(c.isalnum() or c == "_" for c in s[1:eq]):
            return False
        value = s[eq + 1:].lstrip(" \t")
        multiline = value.endswith("\\")
        if multiline:
            value = value[:-1].rstrip(" \t")
        d = _Def([value] if value else [], multiline)
        self.defs[s[1:eq]] = d
        self._open_def = d if multiline else None
        return True

    def _continue_def(self, t: Text) -> None:
        d = self._open_def
        assert d is not None
        line, _ = decomment(t)
        more = line.s.endswith("\\")
        value = line.s[:-1].rstrip(" \t") if more else line.s
        if value:
            d.lines.append(value)
        if not more:
            self._open_def = None
            d.multiline = len(d.lines) > 1

    def _expand(self, t: Text) -> tuple[Text | None, list[Text]]:
        """Replace known $NAME / ${NAME} references. A multi-line definition at the end of
        a line adds its other lines after it."""
        s, out, i, changed = t.s, t[0:0], 0, False
        extra: list[Text] = []
        while i < len(s):
            if s[i] != "$":
                out = out + t[i:i + 1]
                i += 1
                continue
            ref = _reference(s, i)
            d = self.defs.get(ref[0]) if ref else None
            if ref is None or d is None or (d.multiline and ref[1] != len(s)):
                out = out + t[i:i + 1]
                i += 1
                continue
            name, end = ref
            value = str(random.randint(0, 32767)) if name == "_RANDOM" else \
                (d.lines[0] if d.lines else "")
            if name == "_PWD":
                value = self.stack[-1].rsplit("/", 1)[0] if self.stack else os.getcwd()
            col = t.cols[i]
            out = out + Text(value, [col] * len(value))
            extra += [Text(line, [col] * len(line)) for line in d.lines[1:]]
            changed = True
            i = end
        return (out if changed else None), extra

    def _include(self, kind: str, pattern: str, at: Pos, here: str) -> Iterator[Segment]:
        strict = kind != ""  # includer/includem/...: a missing file stops keepalived
        if not pattern:
            self.report.warning(at, "include without a file name")
            return
        if pattern.startswith("/") and self.root is not None:
            base = str(self.root) + pattern
        else:
            base = os.path.normpath(os.path.join(here, pattern)) if here else pattern
        matches = sorted({m for p in _brace_expand(base) for m in glob.glob(p)})
        if not matches:
            wild = any(c in pattern for c in "*?[")
            what = "matches no file" if wild else "names a file that does not exist"
            self.report.add(at, "error" if strict else "warning", f"include {pattern} {what}")
            return
        for match in matches:
            path = Path(match)
            if path.is_dir():
                self.report.warning(at, f"include: {match} is a directory - skipping")
                continue
            mode = path.stat().st_mode
            if mode & 0o111:
                self.report.warning(at, f"include: {match} is executable; keepalived skips "
                                    "executable config files")
                continue
            yield from self.read_file(match, path, at)


def _include_of(s: str) -> tuple[str, str] | None:
    """keepalived's is_include(): `include PATH`, or includer/m/w/b/a PATH."""
    if not s.startswith("include") or len(s) < 8:
        return None
    if s[7] in " \t":
        return "", s[8:].lstrip(" \t")
    if len(s) > 8 and s[7] in "rmwba" and s[8] in " \t":
        return s[7], s[9:].lstrip(" \t")
    return None


def _reference(s: str, i: int) -> tuple[str, int] | None:
    """The name and end index of a `$NAME` or `${NAME}` reference starting at s[i]."""
    j = i + 1
    braces = j < len(s) and s[j] == "{"
    if braces:
        j += 1
    start = j
    if j >= len(s) or not (s[j].isalpha() or s[j] == "_"):
        return None
    while j < len(s) and (s[j].isalnum() or s[j] == "_"):
        j += 1
    name = s[start:j]
    if braces:
        if j >= len(s) or s[j] != "}":
            return None
        return name, j + 1
    if j < len(s) and s[j] not in " \t,)":
        return None
    return name, j


def _brace_expand(pattern: str) -> list[str]:
    """GLOB_BRACE: `a{b,c}d` -> `abd`, `acd` (innermost first, as glibc does)."""
    close = pattern.find("}")
    open_ = pattern.rfind("{", 0, close) if close >= 0 else -1
    if open_ < 0:
        return [pattern]
    head, body, tail = pattern[:open_], pattern[open_ + 1:close], pattern[close + 1:]
    return [x for alt in body.split(",") for x in _brace_expand(head + alt + tail)]


class _Peek:
    def __init__(self, it: Iterator[Segment]) -> None:
        self.it = it
        self.ahead: list[Segment] = []

    def next(self) -> Segment | None:
        if self.ahead:
            return self.ahead.pop()
        return next(self.it, None)

    def push(self, seg: Segment) -> None:
        self.ahead.append(seg)


class _Parser:
    def __init__(self, report: Report, segs: Iterator[Segment]) -> None:
        self.report = report
        self.segs = _Peek(segs)
        self.names: dict[str, set[str]] = {}
        self.unclosed: list[Stmt] = []
        # levels where an unknown keyword opened a '{' that keepalived does not skip: the
        # lines it holds and its '}' were already explained in one warning
        self.shadow: dict[int, bool] = {}

    def block(self, ctx: str, level: int, need_open: bool, owner: Stmt | None) -> list[Stmt]:
        out: list[Stmt] = []
        table = TABLES[ctx]
        while (seg := self.segs.next()) is not None:
            w = seg.first
            if need_open:
                need_open = False
                if w.text == "{" and len(seg.words) == 1:
                    continue
                assert owner is not None
                self.report.warning(w.pos, f"missing '{{' after '{owner.name}': keepalived "
                                    "reads the lines that follow as its block")
            elif w.text == "{":
                self.report.warning(w.pos, "unexpected '{' - ignoring")
                continue
            if w.text == "}":
                if level > 0:
                    self.shadow.pop(level, None)
                    return out
                if not self.shadow.pop(level, None):
                    self.report.warning(w.pos, "'}' without a matching '{'")
                continue
            kw = table.get(w.text)
            if kw is None:
                if not self.shadow.get(level):
                    self._unknown(seg, level, owner)
                continue
            stmt = Stmt(w, seg.words[1:], seg.text, kw, ctx)
            if len(stmt.args) < kw.args:
                self.report.error(w.pos, f"'{w.text}' is missing its value; keepalived stops "
                                  "reading the config here")
                stmt.incomplete = True
            if kw.kind is Kind.BLOCK:
                self._open(stmt, level)
            elif kw.kind is Kind.VALUES:
                stmt.values = self._values(stmt)
            if stmt.incomplete:
                if owner is not None:
                    owner.dropped.add(stmt.name)
                continue
            out.append(stmt)
        if owner is not None:
            self.unclosed.append(owner)
        return out

    def _open(self, stmt: Stmt, level: int) -> None:
        assert stmt.kw.sub is not None
        if stmt.kw.named:
            seen = self.names.setdefault(stmt.name, set())
            name = stmt.arg(0)
            if len(stmt.args) != 1 or name in seen:
                stmt.skipped = True
                self._skip()
                return
            seen.add(name)
        stmt.block = self.block(stmt.kw.sub, level + 1, True, stmt)

    def _skip(self) -> None:
        """keepalived's skip_block(): skip a `{ }` that follows, if one does."""
        seg = self.segs.next()
        if seg is None:
            return
        if seg.first.text != "{":
            self.segs.push(seg)
            return
        depth = 1
        while depth and (seg := self.segs.next()) is not None:
            for w in seg.words:
                depth += {"{": 1, "}": -1}.get(w.text, 0)

    def _values(self, stmt: Stmt) -> list[Segment]:
        """keepalived's alloc_value_block(): free lines up to the closing '}'."""
        extra = stmt.args[stmt.kw.args:]  # virtual_server_group NAME { ... }: NAME is not
        if extra:
            self.report.warning(extra[0].pos, f"block {stmt.name} has extra parameters "
                                f"{extra[0].text} ... - ignoring them")
        out: list[Segment] = []
        first = True
        while (seg := self.segs.next()) is not None:
            if first:
                first = False
                if seg.first.text == "{" and len(seg.words) == 1:
                    continue
                self.report.warning(seg.first.pos, f"missing '{{' after '{stmt.name}': "
                                    "keepalived reads the lines that follow as its values")
            if seg.first.text == "}" and len(seg.words) == 1:
                return out
            out.append(seg)
        self.unclosed.append(stmt)
        return out

    def _unknown(self, seg: Segment, level: int, owner: Stmt | None) -> None:
        w = seg.first
        where = "at the top level" if owner is None else f"in {owner.name}"
        nxt = self.segs.next()
        if nxt is not None and nxt.first.text == "{" and len(nxt.words) == 1:
            self.shadow[level] = True
            if owner is None:
                self.report.warning(w.pos, f"unknown keyword '{w.text}' at the top level; "
                                    "keepalived does not skip its '{ }', it reads the lines "
                                    "inside as top-level keywords")
            else:
                self.report.warning(w.pos, f"unknown keyword '{w.text}' {where}; keepalived "
                                    "does not skip its '{ }': it reads the lines inside as "
                                    f"part of '{owner.name}', and its '}}' closes "
                                    f"'{owner.name}'")
            return
        if nxt is not None:
            self.segs.push(nxt)
        self.report.warning(w.pos, f"unknown keyword '{w.text}' {where}")


@dataclass
class Parsed:
    statements: list[Stmt]
    files: list[str]


def parse(path: str | Path, report: Report, options: Options | None = None,
          text: str | None = None) -> Parsed:
    """Parse a keepalived.conf and what it includes; problems go to `report`."""
    options = options or Options()
    reader = Reader(report, options)
    shown = str(path)
    parser = _Parser(report, reader.read_file(shown, Path(path), None, text))
    stmts = parser.block("top", 0, False, None)
    if parser.unclosed:
        outer = parser.unclosed[-1]
        count = len(parser.unclosed)
        report.warning(outer.pos, f"'{outer.name}' block is not closed at the end of the "
                       f"config ({count} missing '}}')")
    return Parsed(stmts, reader.files)

"""keepalived.conf lexing, line by line, as keepalived 2.2.7's lib/parser.c reads a line.

keepalived's rules, which this module keeps (and which differ from most config formats):

- `!` and `#` start a comment anywhere outside double quotes, even inside a word
  (`auth_pass ab#cd` is `ab`); `\\#` and `\\!` outside quotes are a literal `#` / `!`.
- Only double quotes group words; a word *starting* with `"` runs to the next `"`.
- Every `{` and `}` outside quotes is a separate line of its own: `vrrp_instance VI_1 {`
  is the two lines `vrrp_instance VI_1` and `{`, and `a { b }` is four.

Every word keeps the 1-based line and column (in characters) of its first character in the
physical line, so a diagnostic can point at it. Substituted text (`$NAME`) takes the
column of the `$` reference.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pyvrrp.config.model import Pos

WHITE_SPACE = " \t\f\n\r\v"


@dataclass(frozen=True, slots=True)
class Word:
    text: str
    file: str
    line: int
    col: int

    @property
    def pos(self) -> Pos:
        return Pos(self.file, self.line, self.col)


@dataclass(frozen=True, slots=True)
class Segment:
    """One logical line, as keepalived's read_line() returns it: words and the raw text."""

    words: tuple[Word, ...]
    text: str

    @property
    def first(self) -> Word:
        return self.words[0]


@dataclass(slots=True)
class Text:
    """A line of text and, for each character, its 0-based column in the physical line."""

    s: str
    cols: list[int]

    @classmethod
    def of(cls, s: str, start: int = 0) -> Text:
        return cls(s, list(range(start, start + len(s))))

    def __getitem__(self, sl: slice) -> Text:
        return Text(self.s[sl], self.cols[sl])

    def __add__(self, other: Text) -> Text:
        return Text(self.s + other.s, self.cols + other.cols)

    def strip(self) -> Text:
        lead = len(self.s) - len(self.s.lstrip(" \t"))
        end = len(self.s.rstrip(" \t"))
        return self if lead == 0 and end == len(self.s) else self[lead:end]


def decomment(t: Text) -> tuple[Text, int | None]:
    """Remove comments and the escaping of `#`/`!`, then surrounding blanks.

    Returns the text and, if a double quote is left open, the column of that quote.
    """
    t = t.strip()
    if '"' not in t.s and "\\" not in t.s:  # the common line: only a comment to cut
        cuts = [i for i in (t.s.find("#"), t.s.find("!")) if i >= 0]
        return (t[:min(cuts)] if cuts else t).strip(), None
    out_s: list[str] = []
    out_c: list[int] = []
    quote_at: int | None = None
    i, n = 0, len(t.s)
    while i < n:
        ch = t.s[i]
        if ch == '"':
            quote_at = None if quote_at is not None else t.cols[i]
        elif ch == "\\" and i + 1 < n:
            if quote_at is None and t.s[i + 1] in "#!":
                out_s.append(t.s[i + 1])
                out_c.append(t.cols[i + 1])
                i += 2
                continue
            out_s += [ch, t.s[i + 1]]
            out_c += [t.cols[i], t.cols[i + 1]]
            i += 2
            continue
        elif ch in "#!" and quote_at is None:
            break
        out_s.append(ch)
        out_c.append(t.cols[i])
        i += 1
    return Text("".join(out_s), out_c).strip(), quote_at


def split_braces(t: Text) -> list[Text]:
    """keepalived makes every `{` and `}` outside double quotes a line of its own."""
    if "{" not in t.s and "}" not in t.s:
        return [t] if t.s else []
    parts: list[Text] = []
    start, in_quote = 0, False
    for i, ch in enumerate(t.s):
        if ch == '"':
            in_quote = not in_quote
        elif ch in "{}" and not in_quote:
            parts += [t[start:i].strip(), t[i:i + 1]]
            start = i + 1
    parts.append(t[start:].strip())
    return [p for p in parts if p.s]


def split_words(t: Text) -> tuple[list[tuple[str, int]], int | None]:
    """keepalived's alloc_strvec_r(): words and their columns; a word that starts with `"`
    runs to the next `"` (quotes dropped). Returns the column of an unmatched quote, if any;
    keepalived drops that word and the rest of the line."""
    words: list[tuple[str, int]] = []
    s, i, n = t.s, 0, len(t.s)
    while True:
        while i < n and s[i] in WHITE_SPACE:
            i += 1
        if i >= n:
            return words, None
        if s[i] == '"':
            end = s.find('"', i + 1)
            if end < 0:
                return words, t.cols[i]
            words.append((s[i + 1:end], t.cols[i]))
            i = end + 1
            continue
        j = i
        while j < n and s[j] not in WHITE_SPACE and s[j] != '"':
            j += 1
        words.append((s[i:j], t.cols[i]))
        i = j


_ESCAPES = {"a": "\a", "b": "\b", "E": "\x1b", "f": "\f", "n": "\n", "r": "\r", "t": "\t",
            "v": "\v"}


def split_quoted_escaped(s: str, byte: Callable[[int], str] = chr) -> list[str] | None:
    """keepalived's alloc_strvec_quoted_escaped(), used for script command lines: both quote
    kinds group, and backslash escapes work everywhere. None if a quote is left open.
    `byte` turns an escaped byte value (0..255) into the character to keep."""
    words: list[str] = []
    i, n = 0, len(s)
    while True:
        while i < n and s[i] in WHITE_SPACE:
            i += 1
        if i >= n:
            return words
        out: list[str] = []
        quote = ""
        while i < n:
            ch = s[i]
            if ch == "\\":
                i += 1
                if i >= n:
                    return None
                esc, i = _unescape(s, i, byte)
                out.append(esc)
                continue
            if quote:
                if ch == quote:
                    quote = ""
                else:
                    out.append(ch)
                i += 1
                continue
            if ch in "\"'":
                quote = ch
                i += 1
                continue
            if ch in WHITE_SPACE:
                break
            out.append(ch)
            i += 1
        if quote:
            return None
        words.append("".join(out))


def _unescape(s: str, i: int, byte: Callable[[int], str] = chr) -> tuple[str, int]:
    ch = s[i]
    if ch == "x" and i + 1 < len(s) and s[i + 1] in "0123456789abcdefABCDEF":
        j = i + 1
        while j < len(s) and s[j] in "0123456789abcdefABCDEF":
            j += 1
        return byte(int(s[i + 1:j], 16) & 0xFF), j
    if ch == "c" and i + 1 < len(s):
        return chr(ord(s[i + 1]) & 0x1F), i + 2
    if "0" <= ch <= "7":
        j = i
        while j < len(s) and j < i + 3 and "0" <= s[j] <= "7":
            j += 1
        return byte(int(s[i:j], 8) & 0xFF), j
    return _ESCAPES.get(ch, ch), i + 1


def quote_word(word: str) -> str:
    """Write a word so keepalived reads it back as one word."""
    if word and not any(c in WHITE_SPACE or c in '"#!{}\\' for c in word):
        return word
    return '"' + word + '"'

"""Parse the program's `{:?}` output into Python values pytest-uprobe's docs promise.

Structs -> dict (a Struct equals a dict of its fields); `Some(x)` -> x; `None` -> None;
`Name(x)` / `Name { .. }` enum variants -> pytest_uprobe.Variant; `Name` alone -> str
(a unit variant equals its name); maps -> dict; sets -> set; strings/ints/floats as usual.
"""

import re

from pytest_uprobe import Variant

_TOK = re.compile(
    r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<num>-?\d+(?:\.\d+)?(?:e-?\d+)?)|(?P<id>[A-Za-z_][A-Za-z0-9_]*(?:::[A-Za-z0-9_<>&]+)*)|(?P<p>[\[\](){}:,]))'
)

STRUCTS = {"Flat", "Tiered", "Bulk", "Item", "Order"}


def _tokens(s):
    pos, out = 0, []
    s = s.strip()
    while pos < len(s):
        m = _TOK.match(s, pos)
        if not m:
            raise ValueError(f"cannot tokenize at {s[pos : pos + 20]!r}")
        pos = m.end()
        kind = m.lastgroup
        out.append((kind, m.group(kind)))
    return out


class _P:
    def __init__(self, toks):
        self.t, self.i = toks, 0

    def peek(self):
        return self.t[self.i] if self.i < len(self.t) else (None, None)

    def take(self, v=None):
        tok = self.t[self.i]
        if v is not None and tok[1] != v:
            raise ValueError(f"expected {v}, got {tok}")
        self.i += 1
        return tok

    def seq(self, close):
        items = []
        while self.peek()[1] != close:
            items.append(self.value())
            if self.peek()[1] == ",":
                self.take(",")
        self.take(close)
        return items

    def value(self):
        kind, v = self.take()
        if kind == "str":
            return bytes(v[1:-1], "utf-8").decode("unicode_escape")
        if kind == "num":
            return float(v) if ("." in v or "e" in v) else int(v)
        if v == "[":
            return self.seq("]")
        if v == "(":
            items = self.seq(")")
            return tuple(items)
        if v == "{":
            # map or set
            items, is_map = [], False
            while self.peek()[1] != "}":
                k = self.value()
                if self.peek()[1] == ":":
                    self.take(":")
                    is_map = True
                    items.append((k, self.value()))
                else:
                    items.append(k)
                if self.peek()[1] == ",":
                    self.take(",")
            self.take("}")
            return dict(items) if is_map else set(items)
        if kind == "id":
            if v in ("true", "false"):
                return v == "true"
            if v == "None":
                return None
            nxt = self.peek()[1]
            if nxt == "(":
                self.take("(")
                items = self.seq(")")
                if v == "Some":
                    return items[0]
                payload = items[0] if len(items) == 1 else tuple(items)
                return Variant(v, payload)
            if nxt == "{":
                self.take("{")
                fields = {}
                while self.peek()[1] != "}":
                    _, name = self.take()
                    self.take(":")
                    fields[name] = self.value()
                    if self.peek()[1] == ",":
                        self.take(",")
                self.take("}")
                return fields if v in STRUCTS else Variant(v, fields)
            return v  # unit variant
        raise ValueError(f"unexpected token {v!r}")


def parse(s):
    p = _P(_tokens(s))
    v = p.value()
    if p.i != len(p.t):
        raise ValueError(f"trailing tokens in {s!r}")
    return v


def calls(stdout, tag="CALL"):
    """{name: [(args_tuple, ret_text_parsed), ...]} from `TAG name | a | b => r` lines."""
    out = {}
    for line in stdout.splitlines():
        if not line.startswith(tag + " "):
            continue
        body = line[len(tag) + 1 :].split("  # ")[0]
        head, _, ret = body.rpartition(" => ")
        parts = head.split(" | ")
        name, args = parts[0], tuple(parse(a) for a in parts[1:])
        try:
            r = parse(ret)
        except ValueError:
            r = ret.strip()
        out.setdefault(name, []).append((args, r))
    return out


def arg_lines(stdout):
    out = {}
    for line in stdout.splitlines():
        if line.startswith("ARG "):
            parts = line[4:].split(" | ")
            out.setdefault(parts[0], []).append(tuple(parse(a) for a in parts[1:]))
    return out

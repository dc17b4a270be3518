"""Parse Rust `{:?}` output into Python values (the expected side of every test)."""

import re

from pytest_uprobe import Variant

STRUCTS = {"Summary", "Span", "Clamp", "Poly", "Hypot", "Mean", "Quantile", "Env"}
TOK = re.compile(
    r"""\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<chr>'(?:[^'\\]|\\.)')|(?P<num>-?(?:inf|NaN|\d+(?:\.\d+)?(?:e-?\d+)?))(?![\w])|(?P<id>[A-Za-z_][A-Za-z0-9_]*)|(?P<p>[\[\](){},:]))"""
)


class Node:
    def __init__(self, name, payload):
        self.name, self.payload = name, payload

    def __repr__(self):
        return f"Node({self.name!r}, {self.payload!r})"


def _unescape(s):
    return s[1:-1].encode().decode("unicode_escape")


def tokenize(text):
    pos, out = 0, []
    text = text.strip()
    while pos < len(text):
        m = TOK.match(text, pos)
        if not m or m.end() == pos:
            raise ValueError(f"cannot tokenize {text[pos : pos + 30]!r}")
        pos = m.end()
        kind = m.lastgroup
        out.append((kind, m.group(kind)))
    return out


def parse(text):
    toks = tokenize(text)
    i = 0

    def peek():
        return toks[i] if i < len(toks) else (None, None)

    def take(p=None):
        nonlocal i
        t = toks[i]
        if p is not None and t[1] != p:
            raise ValueError(f"expected {p} got {t} in {text!r}")
        i += 1
        return t

    def seq(close):
        items = []
        while peek()[1] != close:
            items.append(value())
            if peek()[1] == ",":
                take(",")
        take(close)
        return items

    def value():
        kind, v = take()
        if kind == "str":
            return _unescape(v)
        if kind == "chr":
            return _unescape(v)
        if kind == "num":
            return float(v) if any(c in v for c in ".eNi") else int(v)
        if v == "[":
            return seq("]")
        if v == "(":
            items = seq(")")
            return tuple(items)
        if v == "{":
            d = {}
            while peek()[1] != "}":
                k = value()
                take(":")
                d[k] = value()
                if peek()[1] == ",":
                    take(",")
            take("}")
            return d
        if kind == "id":
            if v in ("true", "false"):
                return v == "true"
            if v == "None":
                return None
            if peek()[1] == "(":
                take("(")
                items = seq(")")
                if v == "Some":
                    return items[0]
                return Node(v, tuple(items))
            if peek()[1] == "{":
                take("{")
                d = {}
                while peek()[1] != "}":
                    _, k = take()
                    take(":")
                    d[k] = value()
                    if peek()[1] == ",":
                        take(",")
                take("}")
                return Node(v, d)
            return Node(v, None)
        raise ValueError(f"unexpected {v!r} in {text!r}")

    out = value()
    if i != len(toks):
        raise ValueError(f"trailing tokens in {text!r}")
    return out


def to_py(x):
    """Nodes become what pytest-uprobe's docs say the value decodes to."""
    if isinstance(x, Node):
        if x.name in STRUCTS:
            if x.payload is None:
                return {}
            if isinstance(x.payload, tuple):
                return tuple(to_py(p) for p in x.payload)
            return {k: to_py(v) for k, v in x.payload.items()}
        if x.payload is None:
            return Variant(x.name, None)
        if isinstance(x.payload, tuple):
            p = tuple(to_py(p) for p in x.payload)
            return Variant(x.name, p[0] if len(p) == 1 else p)
        return Variant(x.name, {k: to_py(v) for k, v in x.payload.items()})
    if isinstance(x, list):
        return [to_py(v) for v in x]
    if isinstance(x, tuple):
        return tuple(to_py(v) for v in x)
    if isinstance(x, dict):
        return {to_py(k): to_py(v) for k, v in x.items()}
    return x


def printed(stdout, name):
    """[(args tuple, return value)] of every `@@ name | args | ret` line."""
    out = []
    for line in stdout.splitlines():
        if line.startswith(f"@@ {name} | "):
            _, a, r = line.split(" | ", 2)
            out.append((to_py(parse(a)), to_py(parse(r))))
    return out


def marker(stdout, key):
    for line in stdout.splitlines():
        if line.startswith(f"@@{key} "):
            return line[len(key) + 3 :]
    raise KeyError(key)

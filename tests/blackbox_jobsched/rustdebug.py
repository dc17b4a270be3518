"""A small parser of Rust `{:?}` output into the Python values the docs promise."""

import datetime

from pytest_uprobe import Variant

_UNITS = {"s": 10**9, "ms": 10**6, "µs": 10**3, "us": 10**3, "ns": 1}


class _P:
    def __init__(self, s):
        self.s, self.i = s, 0

    def ws(self):
        while self.i < len(self.s) and self.s[self.i] == " ":
            self.i += 1

    def peek(self):
        self.ws()
        return self.s[self.i] if self.i < len(self.s) else ""

    def eat(self, c):
        self.ws()
        assert self.s.startswith(c, self.i), (c, self.s[self.i :])
        self.i += len(c)

    def seq(self, close):
        items = []
        while self.peek() != close:
            items.append(self.value())
            if self.peek() == ",":
                self.eat(",")
        self.eat(close)
        return items

    def string(self, q):
        self.eat(q)
        out = []
        while self.s[self.i] != q:
            c = self.s[self.i]
            if c == "\\":
                n = self.s[self.i + 1]
                out.append({"n": "\n", "t": "\t", "r": "\r", "0": "\0"}.get(n, n))
                self.i += 2
            else:
                out.append(c)
                self.i += 1
        self.i += 1
        return "".join(out)

    def value(self):
        c = self.peek()
        if c == '"':
            return self.string('"')
        if c == "'":
            return self.string("'")
        if c == "[":
            self.eat("[")
            return self.seq("]")
        if c == "(":
            self.eat("(")
            return tuple(self.seq(")"))
        if c == "{":
            self.eat("{")
            if self.peek() == "}":
                self.eat("}")
                return {}
            first = self.value()
            if self.peek() == ":":
                self.eat(":")
                d = {first: self.value()}
                while self.peek() == ",":
                    self.eat(",")
                    if self.peek() == "}":
                        break
                    k = self.value()
                    self.eat(":")
                    d[k] = self.value()
                self.eat("}")
                return d
            items = [first]
            if self.peek() == ",":
                self.eat(",")
            items += self.seq("}")
            return set(items)
        if c == "-" or c.isdigit():
            j = self.i + 1
            while j < len(self.s) and (self.s[j].isdigit() or self.s[j] == "."):
                j += 1
            num = self.s[self.i : j]
            k = j
            while k < len(self.s) and self.s[k].isalpha() or (k < len(self.s) and self.s[k] == "µ"):
                k += 1
            unit = self.s[j:k]
            self.i = k
            if unit:
                # a Duration: `1.5s`, `300ms`
                from decimal import Decimal

                ns = int(Decimal(num) * _UNITS[unit])
                return datetime.timedelta(microseconds=ns // 1000)
            return float(num) if "." in num else int(num)
        # identifier
        j = self.i
        while j < len(self.s) and (self.s[j].isalnum() or self.s[j] in "_:"):
            j += 1
        name = self.s[self.i : j]
        self.i = j
        if name in ("true", "false"):
            return name == "true"
        if name == "None":
            return None
        nxt = self.peek()
        if nxt == "(":
            self.eat("(")
            self.ws()
            inner_is_option = self.s.startswith(("Some(", "None"), self.i)
            items = self.seq(")")
            payload = items[0] if len(items) == 1 else tuple(items)
            if name == "Some":
                # docs: Variant("Some", x) where x could read as None itself
                return Variant("Some", payload) if inner_is_option else payload
            return Variant(name, payload)
        if nxt == "{":
            self.eat("{")
            d = {}
            while self.peek() != "}":
                if self.s.startswith("..", self.i):
                    self.i += 2
                    continue
                k = self.s[self.i : self.s.index(":", self.i)].strip()
                self.i = self.s.index(":", self.i) + 1
                d[k] = self.value()
                if self.peek() == ",":
                    self.eat(",")
            self.eat("}")
            return d
        return name


def parse(s):
    p = _P(s.strip())
    v = p.value()
    p.ws()
    assert p.i == len(p.s), f"trailing text in {s!r}: {p.s[p.i :]!r}"
    return v


def parse_ret(s):
    return None if s.strip() == "()" else parse(s)


def calls(stdout):
    """{path: [(args_tuple, retval, extra_text), ...]} from the CALL lines."""
    out = {}
    for line in stdout.splitlines():
        if not line.startswith("CALL "):
            continue
        rest = line[len("CALL ") :]
        name, rest = rest.split(" args=", 1)
        p = _P(rest)
        args = p.value()
        p.eat(" ret=") if False else None
        p.ws()
        assert p.s.startswith("ret=", p.i), rest
        p.i += 4
        ret = parse_ret_partial(p)
        out.setdefault(name, []).append((args, ret, p.s[p.i :].strip()))
    return out


def parse_ret_partial(p):
    if p.s.startswith("()", p.i):
        p.i += 2
        return None
    return p.value()


def async_lines(stdout):
    """[(kind, name, args, fields)] from the ASYNC / ASYNC-DROP lines."""
    out = []
    for line in stdout.splitlines():
        if not line.startswith("ASYNC ") and not line.startswith("ASYNC-DROP "):
            continue
        kind, rest = line.split(" ", 1)
        name, rest = rest.split(" args=", 1)
        p = _P(rest)
        args = p.value()
        fields = {}
        tail = p.s[p.i :].strip()
        while tail:
            k, v = tail.split("=", 1)
            if k == "ret":
                fields["ret"] = parse(v)
                break
            v, _, tail = v.partition(" ")
            fields[k] = v
            tail = tail.strip()
        out.append((kind, name, args, fields))
    return out


def ordered(stdout):
    """[(path, args, ret)] of the CALL lines in the order printed."""
    out = []
    for line in stdout.splitlines():
        if line.startswith("CALL "):
            one = calls(line)
            ((name, [(a, r, _)]),) = one.items()
            out.append((name, a, r))
    return out

"""Reading Rust source for the count bounds (dwarf/source.py): a function's body, the
calls it makes of a name, whether a position is in a loop, and which function a call
expression names. No compiler, no privileges."""

from __future__ import annotations

from pytest_uprobe.dwarf import merging, source

TEXT = """\
/// fn fib(n) in a comment is no definition, and "fib(1)" in a string is no call
#[inline(never)]
fn fib(n: u32) -> u64 {
    let s = "fib(2) { }"; // fib(3)
    let c = '{';
    if n < 2 { n as u64 } else { fib(n - 1) + crate::fib(n - 2) + Self::fib(0) }
}

fn other<'a>(x: &'a str) -> usize {
    fn fib(k: u32) -> u32 { k }
    x.len() + fib(1) as usize + fib!(2) + Vec::<u8>::fib(3)
}

impl Tree {
    fn sum(&self) -> i64 {
        for child in &self.children {
            total += child.sum();
        }
        while let Some(x) = next() { go(x) }
        self.left.sum() + Tree::sum(r) + sum::<u8>(z)
    }
}
"""


def spans(text: source.SourceFile, name: str, start: int, end: int) -> list[tuple[str, str, str]]:
    """(kind, qualifier, the text from the expression's start to the name's end)."""
    return [
        (c.kind, c.qualifier, text.code[c.expression_offset : c.name_offset + len(name)])
        for c in source.calls_named(text, name, start, end)
    ]


def test_a_body_is_found_past_comments_strings_and_chars() -> None:
    text = source.SourceFile.of("main.rs", TEXT)
    start, end, signature = source.function_body(text, "fib", 3)
    assert signature.startswith("fn fib(n: u32) -> u64")
    assert text.code[end] == "}" and text.position(end) == (7, 1)
    body = text.text[start:end]
    assert "fib(n - 1)" in body and "fn other" not in body
    assert source.function_body(text, "fib", 1) is not None  # the doc comment is blank
    assert source.function_body(text, "no_such", 3) is None


def test_the_calls_of_a_name_in_a_body() -> None:
    text = source.SourceFile.of("main.rs", TEXT)
    start, end, _ = source.function_body(text, "fib", 3)
    assert spans(text, "fib", start, end) == [
        ("plain", "", "fib"),
        ("path", "crate::", "crate::fib"),
        ("path", "Self::", "Self::fib"),
    ]  # not the ones in the comment, the string, or the char
    start, end, _ = source.function_body(text, "other", 9)
    # A nested definition and a macro are no calls; `x.len()` and `Vec::<u8>::fib` are
    # calls the caller filters (a method in a free function, another type's path).
    assert spans(text, "fib", start, end) == [
        ("plain", "", "fib"),
        ("path", "Vec::<u8>::", "Vec::<u8>::fib"),
    ]
    assert [c.kind for c in source.calls_named(text, "len", start, end)] == ["method"]


def test_method_calls_and_turbofish() -> None:
    text = source.SourceFile.of("main.rs", TEXT)
    start, end, signature = source.function_body(text, "sum", 15)
    assert "&self" in signature
    found = spans(text, "sum", start, end)
    assert found == [
        ("method", "", "child.sum"),
        ("method", "", "self.left.sum"),
        ("path", "Tree::", "Tree::sum"),
        ("plain", "", "sum::<u8>"[:3]),
    ]
    line, column = text.position(next(source.calls_named(text, "sum", start, end)).name_offset)
    assert (line, column) == (17, 28)  # where the line table puts a method call: its name


def test_inside_a_loop_of_the_source() -> None:
    text = source.SourceFile.of("main.rs", TEXT)
    start, _, _ = source.function_body(text, "sum", 15)
    assert source.inside_loop(text, start, text.offset(17, 22))  # in the `for` block
    assert source.inside_loop(text, start, text.offset(16, 22))  # the `for`'s iterator
    assert source.inside_loop(text, start, text.offset(19, 38))  # in the `while` block
    assert not source.inside_loop(text, start, text.offset(20, 9))  # after both
    fib_start, _, _ = source.function_body(text, "fib", 3)
    assert not source.inside_loop(text, fib_start, text.offset(6, 34))


def test_the_name_a_call_expression_calls() -> None:
    text = source.SourceFile.of("main.rs", TEXT)

    def at(line: int, column: int) -> str | None:
        return merging._called_name(text, source.Spot(0, 1, "main.rs", line, column, True))

    assert at(6, 34) == "fib"  # `fib(n - 1)`
    assert at(6, 47) == "fib"  # `crate::fib(n - 2)`, from the path's start
    assert at(6, 54) == "fib"  # ... or from the name
    assert at(20, 19) == "sum"  # `self.left.sum()`: the row gives the method's name
    assert at(20, 27) == "sum"  # `Tree::sum(r)`
    assert at(6, 5) is None  # `if n < 2`: no call

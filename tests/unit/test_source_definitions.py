"""Which `fn` a source line sits in, and the path the source gives it (dwarf/source.py's
`definitions`): how a copy named only `prec` by line-tables-only DWARF is identified.
Neither root nor a compiler is needed."""

from __future__ import annotations

from pytest_uprobe.dwarf.source import SourceFile, definitions

TEXT = """\
struct Parser { ops: Vec<char> }

impl Parser {
    fn prec(&self, op: char) -> u32 {
        // fn not_a_function() { }
        let s = "fn neither() {";
        if op == '+' { 1 } else { 2 }
    }
}

impl<T: Clone> Wrapper<T> where T: Copy {
    fn get(&self) -> T { self.0 }
}

impl std::fmt::Display for Parser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { Ok(()) }
}

trait Shape {
    fn area(&self) -> f64;
    fn twice(&self) -> f64 { 2.0 * self.area() }
}

mod ops {
    pub fn weight(op: char) -> u32 {
        fn inner() -> u32 { 1 }
        inner() + op as u32
    }
}

pub fn parse(s: &str) -> usize {
    s.len()
}
"""


def by_name() -> dict[str, list[tuple[int, int, tuple[str, ...] | None]]]:
    found = definitions(SourceFile.of("src/main.rs", TEXT))
    return {
        name: [(d.first_line, d.last_line, d.scope) for d in defs] for name, defs in found.items()
    }


def test_inherent_method_is_scoped_by_its_type():
    assert by_name()["prec"] == [(4, 8, ("Parser",))]


def test_comments_and_strings_hold_no_functions():
    assert "not_a_function" not in by_name() and "neither" not in by_name()


def test_an_impl_of_a_type_not_defined_in_the_file_has_no_known_scope():
    assert by_name()["get"] == [(12, 12, None)]


def test_trait_impls_and_trait_methods_have_no_known_scope():
    assert by_name()["fmt"] == [(16, 16, None)]
    assert by_name()["twice"] == [(21, 21, None)]
    assert "area" not in by_name()  # a declaration without a body


def test_module_and_nested_functions():
    assert by_name()["weight"] == [(25, 28, ("ops",))]
    assert by_name()["inner"] == [(26, 26, ("ops", "weight"))]


def test_crate_root_function():
    assert by_name()["parse"] == [(31, 33, ())]

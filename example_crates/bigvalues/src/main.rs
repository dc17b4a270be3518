//! Values of realistic size and the std types rustc's pretty-printers know, for
//! tests/integration/test_bigvalues.py. Each `#[inline(never)]` function prints its
//! arguments with `{:?}` as `ARG <function> <name> = <value>`; `main` prints each return
//! value as `RET <function> = <value>`.
//!
//! `bigvalues big N`: collections of N entries (`&[String]`, `&[Book]`, `HashMap`,
//! `BTreeMap`, `BTreeSet`; a BTreeMap of more than 143 entries has height 2 or more).
//! `bigvalues std`: `Rc<str>`, `Arc<str>`, `Rc<[T]>`, `Box<str>`, `Box<[T]>`, `Weak`
//! (alive and dropped), `OnceCell`/`OnceLock` (set and not), `Cow`, `Cell`, `Pin` and
//! trait objects (build with `-C dwarf-version=5` to check them under DWARF 5).

use std::borrow::Cow;
use std::cell::{Cell, OnceCell};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hint::black_box;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::sync::{Arc, OnceLock};

#[derive(Debug, Clone, PartialEq)]
pub struct Book {
    title: String,
    year: u32,
    tags: Vec<String>,
}

pub trait Shape: std::fmt::Debug {
    fn area(&self) -> u64;
}

#[derive(Debug)]
pub struct Square {
    side: u64,
}

#[derive(Debug)]
pub struct Label {
    text: String,
    scale: u32,
}

impl Shape for Square {
    fn area(&self) -> u64 {
        self.side * self.side
    }
}

impl Shape for Label {
    fn area(&self) -> u64 {
        self.text.len() as u64 * self.scale as u64
    }
}

macro_rules! show {
    ($f:literal, $($name:ident),*) => {
        $(println!("ARG {} {} = {:?}", $f, stringify!($name), $name);)*
    };
}

macro_rules! ret {
    ($f:literal, $value:expr) => {{
        let value = $value;
        println!("RET {} = {:?}", $f, value);
    }};
}

#[inline(never)]
pub fn b_lines(lines: &[String]) -> usize {
    show!("b_lines", lines);
    lines.len()
}

#[inline(never)]
pub fn b_books(books: &[Book]) -> usize {
    show!("b_books", books);
    books.iter().map(|b| b.tags.len()).sum()
}

#[inline(never)]
pub fn b_map(m: &HashMap<String, u32>) -> usize {
    show!("b_map", m);
    m.len()
}

#[inline(never)]
pub fn b_tree(m: &BTreeMap<u32, String>) -> usize {
    show!("b_tree", m);
    m.len()
}

#[inline(never)]
pub fn b_set(s: &BTreeSet<i64>) -> usize {
    show!("b_set", s);
    s.len()
}

#[inline(never)]
pub fn s_rc_str(s: Rc<str>) -> usize {
    show!("s_rc_str", s);
    s.len()
}

#[inline(never)]
pub fn s_arc_str(s: Arc<str>) -> usize {
    show!("s_arc_str", s);
    s.len()
}

#[inline(never)]
pub fn s_rc_slice(s: Rc<[u32]>) -> usize {
    show!("s_rc_slice", s);
    s.len()
}

#[inline(never)]
pub fn s_arc_slice(s: Arc<[u16]>) -> usize {
    show!("s_arc_slice", s);
    s.len()
}

#[inline(never)]
pub fn s_box_str(s: Box<str>) -> usize {
    show!("s_box_str", s);
    s.len()
}

#[inline(never)]
pub fn s_box_slice(s: Box<[i32]>) -> usize {
    show!("s_box_slice", s);
    s.len()
}

/// Prints the value a Weak reaches (`Some(v)`), or `None` once it is dropped.
#[inline(never)]
pub fn s_weak(w: &Weak<u32>) -> bool {
    println!("ARG s_weak w = {:?}", w.upgrade().map(|v| *v));
    w.upgrade().is_some()
}

/// Prints the value (`Some(v)`), or `None` while uninitialised.
#[inline(never)]
pub fn s_oncecell(c: &OnceCell<String>) -> bool {
    println!("ARG s_oncecell c = {:?}", c.get());
    c.get().is_some()
}

#[inline(never)]
pub fn s_oncelock(c: &OnceLock<u64>) -> bool {
    println!("ARG s_oncelock c = {:?}", c.get());
    c.get().is_some()
}

#[inline(never)]
pub fn s_cow(c: Cow<str>) -> usize {
    show!("s_cow", c);
    c.len()
}

#[inline(never)]
pub fn s_cell(c: &Cell<i16>) -> i16 {
    show!("s_cell", c);
    c.get()
}

#[inline(never)]
pub fn s_pin(p: Pin<Box<u64>>) -> u64 {
    show!("s_pin", p);
    *p
}

#[inline(never)]
pub fn s_dyn(s: &dyn Shape) -> u64 {
    show!("s_dyn", s);
    s.area()
}

#[inline(never)]
pub fn s_box_dyn(s: Box<dyn Shape>) -> u64 {
    show!("s_box_dyn", s);
    s.area()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map(String::as_str).unwrap_or("std");
    if mode == "big" {
        let n: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(200);
        let lines: Vec<String> = (0..n).map(|i| format!("line {} {}", i, "x".repeat(i % 7))).collect();
        ret!("b_lines", b_lines(black_box(&lines)));
        let books: Vec<Book> = (0..n)
            .map(|i| Book {
                title: format!("Book {}", i),
                year: 1900 + (i as u32 % 120),
                tags: (0..i % 3).map(|t| format!("t{}", t + i % 5)).collect(),
            })
            .collect();
        ret!("b_books", b_books(black_box(&books)));
        let map: HashMap<String, u32> = (0..n).map(|i| (format!("k{}", i * 7), i as u32)).collect();
        ret!("b_map", b_map(black_box(&map)));
        let tree: BTreeMap<u32, String> = (0..n as u32).map(|i| (i * 3, format!("v{}", i))).collect();
        ret!("b_tree", b_tree(black_box(&tree)));
        let set: BTreeSet<i64> = (0..n as i64).map(|i| i * i - 50).collect();
        ret!("b_set", b_set(black_box(&set)));
        return;
    }
    ret!("s_rc_str", s_rc_str(black_box(Rc::from("shared text"))));
    ret!("s_arc_str", s_arc_str(black_box(Arc::from("atomic text"))));
    ret!("s_rc_slice", s_rc_slice(black_box(Rc::from(vec![3u32, 1, 4, 1, 5]))));
    ret!("s_arc_slice", s_arc_slice(black_box(Arc::from(vec![9u16, 8]))));
    ret!("s_box_str", s_box_str(black_box(Box::from("boxed"))));
    ret!("s_box_slice", s_box_slice(black_box(vec![-1i32, 2, -3].into_boxed_slice())));
    let alive = Rc::new(77u32);
    let weak = Rc::downgrade(&alive);
    ret!("s_weak", s_weak(black_box(&weak)));
    drop(alive);
    ret!("s_weak", s_weak(black_box(&weak)));
    let never: Weak<u32> = Weak::new();
    ret!("s_weak", s_weak(black_box(&never)));
    let cell: OnceCell<String> = OnceCell::new();
    ret!("s_oncecell", s_oncecell(black_box(&cell)));
    cell.set("ready".to_string()).unwrap();
    ret!("s_oncecell", s_oncecell(black_box(&cell)));
    let lock: OnceLock<u64> = OnceLock::new();
    ret!("s_oncelock", s_oncelock(black_box(&lock)));
    lock.set(1234).unwrap();
    ret!("s_oncelock", s_oncelock(black_box(&lock)));
    ret!("s_cow", s_cow(black_box(Cow::Borrowed("borrowed"))));
    ret!("s_cow", s_cow(black_box(Cow::Owned("owned".to_string()))));
    ret!("s_cell", s_cell(black_box(&Cell::new(-12))));
    ret!("s_pin", s_pin(black_box(Box::pin(99))));
    let square = Square { side: 7 };
    ret!("s_dyn", s_dyn(black_box(&square)));
    ret!("s_dyn", s_dyn(black_box(&Label { text: "hello".into(), scale: 3 })));
    ret!("s_box_dyn", s_box_dyn(black_box(Box::new(Label { text: "boxed".into(), scale: 2 }))));
}

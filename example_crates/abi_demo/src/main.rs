//! A crate whose ABI and inlining decisions are pinned by snapshots (see docs/snapshots.md).
//! `api` holds one function per calling-convention case on x86-64: integers in registers,
//! a `&str` split across two registers, a small struct in two registers, a seventh argument
//! on the stack, floats passed and returned in SSE registers, a 24-byte struct returned
//! through a hidden pointer and one passed by reference, and a small `#[inline]` helper that
//! the release build copies into two callers. `main` prints every result: the program's output
//! is what the functions computed.
use std::env;
use std::hint::black_box;

pub mod api {
    /// 8 bytes, align 4.
    #[derive(Clone, Copy, Debug, PartialEq)]
    pub struct Point {
        pub x: i32,
        pub y: i32,
    }

    /// 24 bytes, align 8: too big for two registers, so it travels through memory.
    #[derive(Clone, Copy, Debug, PartialEq)]
    pub struct Rect {
        pub origin: Point,
        pub width: u64,
        pub height: u64,
    }

    #[inline(never)]
    pub fn add(a: u64, b: u64) -> u64 {
        a.wrapping_add(b)
    }

    #[inline(never)]
    pub fn count_words(text: &str) -> usize {
        text.split_whitespace().count()
    }

    #[inline(never)]
    pub fn shift(p: Point, dx: i32) -> Point {
        Point { x: p.x.wrapping_add(dx), y: p.y }
    }

    #[inline(never)]
    pub fn sum7(a: u64, b: u64, c: u64, d: u64, e: u64, f: u64, g: u64) -> u64 {
        a.wrapping_add(b).wrapping_add(c).wrapping_add(d).wrapping_add(e).wrapping_add(f).wrapping_add(g)
    }

    #[inline(never)]
    pub fn mean(values: &[f64]) -> f64 {
        values.iter().sum::<f64>() / values.len() as f64
    }

    #[inline(never)]
    pub fn lerp(a: f64, b: f64, t: f64) -> f64 {
        a + (b - a) * t
    }

    #[inline(never)]
    pub fn make_rect(x: i32, y: i32, width: u64, height: u64) -> Rect {
        Rect { origin: Point { x, y }, width, height }
    }

    /// The helper the release build inlines into `area` (once) and `perimeter` (twice).
    #[inline]
    pub fn scale(value: u64, factor: u64) -> u64 {
        value.wrapping_mul(factor).rotate_left(1)
    }

    #[inline(never)]
    pub fn area(r: &Rect) -> u64 {
        scale(r.width, r.height)
    }

    #[inline(never)]
    pub fn perimeter(r: Rect) -> u64 {
        scale(r.width, 2).wrapping_add(scale(r.height, 2))
    }
}

fn main() {
    let numbers: Vec<u64> = env::args().skip(1).filter_map(|s| s.parse().ok()).collect();
    let n = black_box(numbers.first().copied().unwrap_or(3));
    let text = black_box("the quick brown fox");
    let rect = api::make_rect(black_box(1), black_box(2), n, n + 1);
    let moved = api::shift(black_box(rect.origin), black_box(5));
    let floats = black_box([1.0, 2.0, n as f64]);
    // Called through pointers the optimizer cannot see through, these keep the ABI rustc
    // gave them. Called directly, LLVM may rewrite an internal function's arguments: it
    // propagated sum7's constant arguments into its body (DWARF then says DW_CC_nocall),
    // and passed area the two fields it reads instead of the reference, depending on
    // what main looked like.
    let sum7: fn(u64, u64, u64, u64, u64, u64, u64) -> u64 = black_box(api::sum7);
    let mean: fn(&[f64]) -> f64 = black_box(api::mean);
    let lerp: fn(f64, f64, f64) -> f64 = black_box(api::lerp);
    let area: fn(&api::Rect) -> u64 = black_box(api::area);
    let perimeter: fn(api::Rect) -> u64 = black_box(api::perimeter);
    println!("add({n}, 4) = {}", api::add(n, black_box(4)));
    println!("count_words({text:?}) = {}", api::count_words(text));
    println!("make_rect(1, 2, {n}, {}) = {rect:?}", n + 1);
    println!("shift({:?}, 5) = {moved:?}", rect.origin);
    println!("sum7(1..=6, {n}) = {}", sum7(1, 2, 3, 4, 5, 6, n));
    println!("mean({floats:?}) = {}", mean(&floats));
    println!("lerp(0, {n}, 0.5) = {}", lerp(0.0, n as f64, black_box(0.5)));
    println!("area = {}", area(&rect));
    println!("perimeter = {}", perimeter(rect));
}

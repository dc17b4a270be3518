//! Values pytest-uprobe once decoded wrong (issue 13), one function per class. Each function
//! prints what it got and what it returns, so tests compare with the program's own output.
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

#[derive(Debug, Clone, Copy)]
pub struct Padded { a: u8, b: u32, c: u16 }

#[derive(Debug, Clone, Copy)]
pub struct Wide(u128);

#[derive(Debug, Clone, Copy)]
pub struct Mixed { a: isize, b: f32 }

#[derive(Debug)]
pub struct Book { title: &'static str, year: Option<u32> }

impl Book {
    #[inline(always)]
    pub fn new(title: &'static str, year: Option<u32>) -> Book {
        black_box(title.len() + year.unwrap_or(0) as usize);
        Book { title, year }
    }
}

#[inline(never)]
pub fn scale(a: i32, b: i32) -> i32 {
    println!("ARG scale {a} {b}");
    a * b
}

#[inline(never)]
pub fn triple(x: u32) -> (u32, u32, u32) {
    let t = (x, x + 1, x + 2);
    println!("RET triple {t:?}");
    t
}

#[inline(never)]
pub fn small(x: u16) -> (u16, u8, u16, u8) {
    let t = (x, 1, x + 1, 2);
    println!("RET small {t:?}");
    t
}

#[inline(never)]
pub fn padded(x: u8) -> Padded {
    let p = Padded { a: x, b: 77, c: 5 };
    println!("RET padded {p:?}");
    p
}

#[inline(never)]
pub fn maybe(x: u32) -> Option<u32> {
    let o = if x > 3 { Some(x) } else { None };
    println!("RET maybe {o:?}");
    o
}

#[inline(never)]
pub fn pair_array(x: u64) -> [u64; 2] {
    let a = [x, x * 2];
    println!("RET pair_array {a:?}");
    a
}

#[inline(never)]
pub fn unused_result(x: u64) -> u64 {
    let y = black_box(x) * 3;
    println!("RET unused_result {y}");
    y
}

#[inline(never)]
#[allow(clippy::too_many_arguments)]
pub fn stacked(a: u64, b: u64, c: u64, d: u64, e: u64, f: u64, g: Wide, h: Mixed) -> u64 {
    println!("ARG stacked {a} {b} {c} {d} {e} {f} {g:?} {h:?}");
    black_box(a.wrapping_add(b + c + d + e + f).wrapping_add(g.0 as u64).wrapping_add(h.a as u64))
}

#[inline(never)]
pub fn nothing(x: u8) -> [u8; 0] {
    println!("ARG nothing {x}");
    []
}

#[inline(never)]
pub async fn fetch_double(x: u32) -> u32 {
    let y = x * 2;
    println!("RET fetch_double {y}");
    y
}

fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

// u64 secs + u32 nanos: 4 bytes of padding, which a release build's location leaves out.
#[inline(never)]
pub fn wait_for(base: std::time::Duration) -> u64 {
    println!("ARG wait_for {} {}", base.as_secs(), base.subsec_nanos());
    (base * 2).as_millis() as u64
}

// Returned through a hidden pointer that a dev build's prologue moves out of rdi.
#[inline(never)]
pub fn tally(words: &[&str], min: usize) -> Vec<usize> {
    let v: Vec<usize> = words.iter().map(|w| w.len()).filter(|&n| n >= min).collect();
    println!("RET tally {v:?}");
    v
}

fn main() {
    let n: u32 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(7);
    black_box(scale(black_box(-3), black_box(4)));
    black_box(triple(black_box(n)));
    black_box(small(black_box(n as u16)));
    black_box(padded(black_box(n as u8)));
    black_box(maybe(black_box(n)));
    black_box(maybe(black_box(1)));
    black_box(pair_array(black_box(n as u64)));
    let _ = unused_result(black_box(n as u64));
    let m = black_box(n as u64);
    black_box(stacked(m, m + 1, m + 2, m + 3, m + 4, m + 5, Wide(m as u128 * 1000), Mixed { a: -(m as isize), b: 1.5 }));
    black_box(nothing(black_box(n as u8)));
    let future = fetch_double(black_box(20));
    println!("RET block_on {}", block_on(future));
    let book = Book::new("", Some(42));
    println!("ARG Book::new {:?} {:?}", book.title, book.year);
    let other = Book::new("Dune", None);
    println!("ARG Book::new {:?} {:?}", other.title, other.year);
    black_box(tally(black_box(&["alpha", "be", "gamma", "delta!"]), black_box(n as usize - 3)));
    black_box(wait_for(black_box(std::time::Duration::new(n as u64, 500_000_000))));
}

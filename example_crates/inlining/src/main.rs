//! A small function inlined at several call sites: in different callers, in a loop, through
//! a generic, and also called through a function pointer (an out-of-line copy). Each function
//! counts its own calls, and `main` prints the counters: the oracle for the traced counts.
use std::env;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

static ADD_CALLS: AtomicU64 = AtomicU64::new(0);
static STEP_CALLS: AtomicU64 = AtomicU64::new(0);

/// Small and hot: the compiler inlines it everywhere it can in release.
#[inline(always)]
pub fn add(a: u64, b: u64) -> u64 {
    ADD_CALLS.fetch_add(1, Ordering::Relaxed);
    a.wrapping_add(b)
}

/// Never inlined: the guard test checks it stays out of line.
#[inline(never)]
pub fn step(x: u64) -> u64 {
    STEP_CALLS.fetch_add(1, Ordering::Relaxed);
    add(x, 1)
}

#[inline(never)]
pub fn in_a_loop(n: u64) -> u64 {
    let mut total = 0;
    for i in 0..n {
        total = add(total, black_box(i));
    }
    total
}

#[inline(never)]
pub fn another_caller(x: u64) -> u64 {
    add(x, 100)
}

pub trait Combine {
    fn combine(&self, other: u64) -> u64;
}

impl Combine for u64 {
    #[inline(always)]
    fn combine(&self, other: u64) -> u64 {
        add(*self, other)
    }
}

#[inline(never)]
pub fn through_generic<T: Combine>(value: T, other: u64) -> u64 {
    value.combine(other)
}

fn main() {
    let n: u64 = env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(5);
    let looped = in_a_loop(n);
    let other = another_caller(n);
    let generic = through_generic(n, 7u64);
    let stepped = step(n);
    // Through a pointer the compiler cannot see through: an out-of-line copy of `add`.
    let pointer: fn(u64, u64) -> u64 = black_box(add as fn(u64, u64) -> u64);
    let by_pointer = pointer(n, 2);
    println!("in_a_loop({n}) = {looped}");
    println!("another_caller({n}) = {other}");
    println!("through_generic({n}, 7) = {generic}");
    println!("step({n}) = {stepped}");
    println!("pointer({n}, 2) = {by_pointer}");
    println!("calls add {}", ADD_CALLS.load(Ordering::Relaxed));
    println!("calls step {}", STEP_CALLS.load(Ordering::Relaxed));
}

//! Loops written on one source line: the line's code jumps back into itself. One execution
//! of such a line is one arrival at it from elsewhere (once per call of the function here),
//! however many passes its loop makes. The program prints both: the calls (the line's
//! executions) and the passes of each loop. Lines are found by the `// probe:` markers.
#![allow(clippy::all)]
use std::env;
use std::hint::black_box;

#[inline(never)]
fn countdown(start: u64) -> u64 {
    let mut x = black_box(start);
    let mut steps = 0u64;
    while x > 0 { x -= 1; steps += 1; } // probe: while-one-line
    println!("countdown({start}) steps={steps}");
    steps
}

#[inline(never)]
fn until(limit: u64) -> u64 {
    let mut i = black_box(0u64);
    loop { i += 1; if i >= limit { break; } } // probe: loop-one-line
    println!("until({limit}) i={i}");
    i
}

#[inline(never)]
fn for_sum(values: &[u64]) -> u64 {
    let mut s = black_box(0u64);
    for x in values { s = s.wrapping_add(black_box(*x)); } // probe: for-one-line
    println!("for_sum({}) = {s}", values.len());
    s
}

#[inline(never)]
fn chain(values: &[u64]) -> u64 {
    let total: u64 = values.iter().map(|v| v.wrapping_mul(3)).sum(); // probe: chain-one-line
    println!("chain({}) = {total}", values.len());
    total
}

#[inline(never)]
fn vector_sum(values: &[u32]) -> u32 {
    let total = values.iter().fold(0u32, |a, v| a.wrapping_add(*v)); // probe: vector-one-line
    println!("vector_sum({}) = {total}", values.len());
    total
}

fn main() {
    let args: Vec<u64> = env::args().skip(1).map(|a| a.parse().expect("numbers")).collect();
    let n = args.first().copied().unwrap_or(5);
    let rounds = args.get(1).copied().unwrap_or(3); // probe: no-loop-two-arrivals
    let values: Vec<u64> = (1..=n).collect();
    let small: Vec<u32> = (1..=n as u32 * 16).collect(); // probe: collect-one-line
    for _ in 0..rounds {
        black_box(countdown(black_box(n)));
        black_box(until(black_box(n)));
        black_box(for_sum(black_box(&values)));
        black_box(chain(black_box(&values)));
        black_box(vector_sum(black_box(&small)));
    }
    println!("rounds={rounds}");
}

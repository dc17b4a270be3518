//! Calls one `#[inline(never)]` function N times (N from argv) and prints the sum, and how
//! long the loop itself took, so a tracer's per-call cost can be told from its set-up cost.
//!
//! usage: bench_loop N [leaf|outer]
//!   leaf   calls `step` (a leaf: no call, no jump out), the default
//!   outer  calls `outer`, which calls `step` (a non-leaf: it gets return-instruction probes)

use std::hint::black_box;
use std::time::Instant;

#[inline(never)]
pub fn step(a: u64, b: u64) -> u64 {
    a.wrapping_mul(31) ^ b
}

#[inline(never)]
pub fn outer(a: u64, b: u64) -> u64 {
    black_box(step(black_box(a), black_box(b))).wrapping_add(1)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(200_000);
    let nonleaf = args.get(2).map(|s| s == "outer").unwrap_or(false);
    let started = Instant::now();
    let mut sum: u64 = 0;
    for i in 0..n {
        let r = if nonleaf {
            outer(black_box(i), black_box(7))
        } else {
            step(black_box(i), black_box(7))
        };
        sum = sum.wrapping_add(r);
    }
    let elapsed = started.elapsed().as_nanos();
    println!("sum {sum}");
    println!("loop_ns {elapsed}");
}

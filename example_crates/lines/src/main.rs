//! Source-line and USDT probes. Every value a test checks is printed too: the oracle.
//!
//! Lines are found by the `// probe:` markers, never by number. `usdt.rs` emits stapsdt
//! notes itself (a `nop` and a `.note.stapsdt` entry, as the `probe` crate does).
mod usdt;

use std::env;
use std::hint::black_box;

/// Inlined into both callers below, in dev builds as well as release.
#[inline(always)]
fn scale(x: u64, k: u64) -> u64 {
    let scaled = black_box(x.wrapping_mul(k)); // probe: scale-body
    scaled.wrapping_add(1)
}

#[inline(never)]
fn first_caller(x: u64) -> u64 {
    scale(x, 3)
}

#[inline(never)]
fn second_caller(x: u64) -> u64 {
    scale(x, 5).wrapping_add(2)
}

#[inline(never)]
fn sum_squares(n: u64) -> u64 {
    let mut total: u64 = 0;
    for i in 0..n {
        let square = black_box(i * i);
        println!("iter i={i} square={square} total={total}");
        total = total.wrapping_add(square); // probe: loop-body
    }
    // probe: comment-only
    total
}

/// Each line's comment says how often it runs for `branches(n)`: the oracle of the test
/// that counts every line (`n`: the loop's trips; `evens`, `odds`: the trips with an even,
/// an odd `i`; `n+1`: the loop's header, once more for the check that ends it).
#[inline(never)]
fn branches(n: u64) -> u64 {
    let mut evens = 0u64; // runs: 1
    let mut odds = 0u64; // runs: 1
    for i in 0..n { // runs: n+1
        if black_box(i) % 2 == 0 { // runs: n
            evens += black_box(i); // runs: evens
        } else {
            odds += black_box(i * 3); // runs: odds
        }
        black_box(evens ^ odds); // runs: n
    }
    println!("branches({n}) evens={evens} odds={odds}"); // runs: 1
    evens * 1000 + odds // runs: 1
}

/// Expensive to compute: only done when a tracer is attached to `lines:work`.
#[inline(never)]
fn expensive_summary(n: u64) -> u64 {
    (0..=n).map(|v| v * v * v).sum()
}

fn main() {
    if env::args().nth(1).as_deref() == Some("wait") {
        // One line of stdin at a time: say whether a tracer is attached to `lines:work` now.
        for _ in std::io::stdin().lines() {
            let enabled = usdt::work_enabled();
            usdt::work(0, 0); // before the answer: the asker knows it ran
            println!("enabled={enabled}");
        }
        return;
    }
    let args: Vec<u64> = env::args().skip(1).map(|a| a.parse().expect("numbers")).collect();
    let n = args.first().copied().unwrap_or(3);
    for &x in &args {
        println!("first_caller({x}) = {}", first_caller(black_box(x)));
        println!("second_caller({x}) = {}", second_caller(black_box(x)));
    }
    println!("sum_squares({n}) = {}", sum_squares(black_box(n)));
    println!("branches = {}", branches(black_box(n)));
    for round in 0..n {
        usdt::start(round, round * 10);
        let enabled = usdt::work_enabled();
        let summary = if enabled { expensive_summary(round) } else { 0 }; // probe: summary
        println!("work round={round} enabled={enabled} summary={summary}"); // probe: work-print
        usdt::work(round, summary);
    }
}

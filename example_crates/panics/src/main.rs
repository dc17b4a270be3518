//! Panics, unwinding, threads, several returns, tail calls, recursion and backtraces:
//! every function the tests probe is `#[inline(never)]`, and `main` prints what each
//! call computed, so a test takes its expected values from this program's own output.
//!
//! Usage: panics MODE ARGS...
//!   catch N...        checked_half(N) inside catch_unwind, for each N (odd N panics)
//!   uncaught N...     checked_half(N) without catch_unwind (an odd N ends the program)
//!   nested N...       outer(N) -> inner(N) inside catch_unwind (negative N panics in inner)
//!   thread M N        checked_half(M) on main, then checked_half(N) on a spawned thread
//!   returns N...      classify(N), a function with several return paths
//!   tail N...         forward(N), which ends in a tail call of grow(N) or shrink(N)
//!   recurse N         tri(N), recursive: tri(k) = k + tri(k - 1), tri(0) = 0
//!   recurse-panic N   tri_or_panic(N) inside catch_unwind: panics at the bottom
//!   leaf A B          leaf_mix(A, B) and non_leaf(A), then waits until the file named
//!                     by the environment variable PANICS_GO exists (if it is set)
//!   backtrace N       bt_outer(N) -> bt_capture(N), which prints a captured backtrace

use std::backtrace::Backtrace;
use std::hint::black_box;
use std::panic;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

#[inline(never)]
pub fn checked_half(n: i64) -> i64 {
    if n % 2 != 0 {
        panic!("odd input {}", n);
    }
    n / 2
}

#[inline(never)]
pub fn inner(n: i64) -> i64 {
    if n < 0 {
        panic!("negative input {}", n);
    }
    black_box(n * 3)
}

#[inline(never)]
pub fn outer(n: i64) -> i64 {
    let tripled = black_box(inner(n));
    tripled + 1
}

#[inline(never)]
pub fn describe(n: i64) -> i64 {
    let text = format!("<{}>", n);
    black_box(text.len() as i64)
}

/// Several return paths: early returns before any frame is set up, a match, a call.
#[inline(never)]
pub fn classify(n: i64) -> i64 {
    if n < 0 {
        return -1;
    }
    if n == 0 {
        return 0;
    }
    match n % 4 {
        0 => n / 4,
        1 => 100 + describe(n),
        2 => 200 + n,
        _ => {
            if n > 1000 {
                return 1000;
            }
            300 + describe(n * 2)
        }
    }
}

#[inline(never)]
pub fn grow(n: i64) -> i64 {
    black_box(n * 10 + 7)
}

#[inline(never)]
pub fn shrink(n: i64) -> i64 {
    black_box(n / 10 - 7)
}

/// Ends in a call whose result it returns unchanged: a tail call (`jmp`) in release.
#[inline(never)]
pub fn forward(n: i64) -> i64 {
    if n > 100 {
        shrink(n + 1)
    } else {
        grow(n + 1)
    }
}

#[inline(never)]
pub fn tri(n: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    let below = black_box(tri(n - 1));
    below + n
}

#[inline(never)]
pub fn tri_or_panic(n: u64) -> u64 {
    if n == 0 {
        panic!("bottom of the recursion");
    }
    let below = black_box(tri_or_panic(n - 1));
    below + n
}

/// No call, no jump out: a leaf in every profile (bit operations only, so no
/// overflow check calls a panic function in dev builds).
#[inline(never)]
pub fn leaf_mix(a: u64, b: u64) -> u64 {
    (a ^ (b << 3)) | 1
}

#[inline(never)]
pub fn non_leaf(a: u64) -> u64 {
    let mixed = black_box(leaf_mix(a, 5));
    mixed & 0xff
}

#[inline(never)]
pub fn bt_capture(n: u64) -> u64 {
    let trace = Backtrace::force_capture();
    println!("backtrace:\n{}", trace);
    black_box(n + 1)
}

#[inline(never)]
pub fn bt_outer(n: u64) -> u64 {
    let got = black_box(bt_capture(n));
    got * 2
}

fn int(text: &str) -> i64 {
    text.parse().unwrap_or_else(|_| panic!("not an integer: {:?}", text))
}

fn wait_for_go() {
    let Some(path) = std::env::var_os("PANICS_GO") else {
        return;
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !Path::new(&path).exists() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mode, rest) = args.split_first().expect("usage: panics MODE ARGS...");
    let numbers: Vec<i64> = rest.iter().map(|a| int(a)).collect();
    match mode.as_str() {
        "catch" => {
            for &n in &numbers {
                match panic::catch_unwind(|| checked_half(n)) {
                    Ok(v) => println!("checked_half({}) = {}", n, v),
                    Err(_) => println!("checked_half({}) panicked", n),
                }
            }
        }
        "uncaught" => {
            for &n in &numbers {
                println!("checked_half({}) = {}", n, checked_half(n));
            }
        }
        "nested" => {
            for &n in &numbers {
                match panic::catch_unwind(|| outer(n)) {
                    Ok(v) => println!("outer({}) = {}", n, v),
                    Err(_) => println!("outer({}) panicked", n),
                }
            }
        }
        "thread" => {
            let (m, n) = (numbers[0], numbers[1]);
            println!("checked_half({}) = {} on main", m, checked_half(m));
            let joined = thread::spawn(move || checked_half(n)).join();
            match joined {
                Ok(v) => println!("thread: checked_half({}) = {}", n, v),
                Err(_) => println!("thread: checked_half({}) panicked; join returned Err", n),
            }
        }
        "returns" => {
            for &n in &numbers {
                println!("classify({}) = {}", n, classify(n));
            }
        }
        "tail" => {
            for &n in &numbers {
                println!("forward({}) = {}", n, forward(n));
            }
        }
        "recurse" => {
            let n = numbers[0] as u64;
            println!("tri({}) = {}", n, tri(n));
        }
        "recurse-panic" => {
            let n = numbers[0] as u64;
            match panic::catch_unwind(|| tri_or_panic(n)) {
                Ok(v) => println!("tri_or_panic({}) = {}", n, v),
                Err(_) => println!("tri_or_panic({}) panicked", n),
            }
        }
        "leaf" => {
            let (a, b) = (numbers[0] as u64, numbers[1] as u64);
            println!("leaf_mix({}, {}) = {}", a, b, leaf_mix(a, b));
            println!("non_leaf({}) = {}", a, non_leaf(a));
            wait_for_go();
        }
        "backtrace" => {
            let n = numbers[0] as u64;
            println!("bt_outer({}) = {}", n, bt_outer(n));
        }
        other => {
            eprintln!("unknown mode {:?}", other);
            std::process::exit(2);
        }
    }
}

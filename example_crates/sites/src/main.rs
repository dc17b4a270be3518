//! Probe sites that are easy to get wrong: overlapping probe names, an atomic inlined at a
//! spot no uprobe can take, merged functions, and a function that ends the process.
//! Every line it prints is what the tests compare with.

use std::fmt::Debug;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

use sites::{Apple, Pear, Weigh};

pub trait Shape {
    fn area(&self) -> u64;
}

pub struct Sq(pub u64);
pub struct Rect(pub u64, pub u64);

impl Shape for Sq {
    #[inline(never)]
    fn area(&self) -> u64 {
        self.0 * self.0
    }
}

impl Shape for Rect {
    #[inline(never)]
    fn area(&self) -> u64 {
        self.0 * self.1
    }
}

#[inline(never)]
pub fn fib(n: u64) -> u64 {
    if n < 2 {
        n
    } else {
        fib(n - 1) + fib(n - 2)
    }
}

#[inline(never)]
pub fn ident<T: Copy + Debug>(x: T) -> T {
    black_box(x)
}

// Two private functions with the same body: a release build keeps one of them.
#[inline(never)]
fn twin_a(x: u64) -> u64 {
    black_box(x).wrapping_mul(2654435761) ^ 0x5a5a
}

#[inline(never)]
fn twin_b(x: u64) -> u64 {
    black_box(x).wrapping_mul(2654435761) ^ 0x5a5a
}

static TICKS: AtomicU64 = AtomicU64::new(0);

/// Its whole body is one LOCK-prefixed instruction, which no x86 uprobe can take.
#[inline(always)]
fn tick() {
    TICKS.fetch_add(1, Ordering::Relaxed);
}

#[inline(never)]
pub fn work(i: u64) -> u64 {
    black_box(i) + 1
}

/// Ticks when i is a multiple of 3, then sums 0..i: the copy of `tick` sits at a jump's
/// target and the loop's head follows it, so no instruction near it runs exactly as often.
#[inline(never)]
pub fn maybe_tick(i: u64) -> u64 {
    let mut sum = 0;
    if black_box(i) % 3 == 0 {
        tick();
    }
    let mut k = 0;
    loop {
        sum += black_box(k);
        k += 1;
        if k >= i {
            break;
        }
    }
    sum
}

#[inline(never)]
pub fn ticking(n: u64) -> u64 {
    let mut sum = 0;
    for i in 0..black_box(n) {
        sum += maybe_tick(i);
    }
    sum
}

#[inline(never)]
pub fn finish(code: i32) -> ! {
    println!("finish({code}) exits");
    std::process::exit(code)
}

#[inline(never)]
pub fn run_then_exit(code: i32) -> u64 {
    let before = work(code as u64);
    println!("work({code}) = {before}");
    if black_box(code) >= 0 {
        finish(code);
    }
    before
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map(String::as_str).unwrap_or("");
    let n: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10);
    match mode {
        "overlap" => {
            println!("fib({n}) = {}", fib(n));
            let shapes: Vec<Box<dyn Shape>> = vec![Box::new(Sq(n)), Box::new(Rect(n, 2))];
            for s in &shapes {
                println!("area = {}", s.area());
            }
        }
        "ident" => {
            println!("ident::<u8>({}) = {}", n as u8, ident(n as u8));
            println!("ident::<u64>({n}) = {}", ident(n));
        }
        "twins" => {
            for i in 0..n {
                println!("twin_a({i}) = {}", twin_a(i));
            }
            println!("twin_b({n}) = {}", twin_b(n));
            let apples = n + 1;
            for i in 0..apples {
                println!("Apple({i}).weight = {}", Apple(i).weight());
            }
            println!("Pear({n}).weight = {}", Pear(n).weight());
        }
        "tick" => {
            tick();
            println!("ticking({n}) = {}", ticking(n));
            println!("ticks = {}", TICKS.load(Ordering::Relaxed));
        }
        "exit" => {
            let code = n as i32;
            println!("run_then_exit({code}) = {}", run_then_exit(code));
        }
        _ => {
            eprintln!("usage: sites overlap|ident|twins|tick|exit N");
            std::process::exit(2);
        }
    }
}

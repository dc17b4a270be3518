//! A zoo of Rust symbol shapes for pytest-uprobe's name resolution tests: generic instances,
//! trait impls called through `dyn`, closures, nested modules, a static and a recursive fn.
//! `main` prints how many times it called each, one `calls <path> <count>` line per function.

use std::env;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

/// A data symbol (`zoo::FIB_CALLS`): probing it must fail, it is not code.
pub static FIB_CALLS: AtomicU64 = AtomicU64::new(0);

#[inline(never)]
pub fn ident<T: Copy>(x: T) -> T {
    // A distinct constant per instance, so that no two instances are merged into one body.
    black_box(std::any::type_name::<T>());
    black_box(x)
}

pub trait Shape {
    fn area(&self) -> u64;
}

pub struct Sq(pub u64);
pub struct Circle(pub u64);

impl Shape for Sq {
    #[inline(never)]
    fn area(&self) -> u64 {
        self.0 * self.0
    }
}

impl Shape for Circle {
    #[inline(never)]
    fn area(&self) -> u64 {
        3 * self.0 * self.0
    }
}

pub mod geometry {
    pub mod inner {
        #[inline(never)]
        pub fn scale(x: u64, k: u64) -> u64 {
            std::hint::black_box(x * k)
        }
    }
}

#[inline(never)]
pub fn fib(n: u64) -> u64 {
    FIB_CALLS.fetch_add(1, Ordering::Relaxed);
    if n < 2 {
        return n;
    }
    // black_box keeps both calls real calls (no accumulator loop in release builds).
    black_box(fib(n - 1)) + black_box(fib(n - 2))
}

fn main() {
    // No closure before `double`: it must be `zoo::main::{closure#0}`.
    let n: u64 = match env::args().nth(1) {
        Some(arg) => arg.parse().expect("the argument is a count"),
        None => 3,
    };
    let mut total: u64 = 0;

    let (mut u8s, mut i32s, mut u64s) = (0u64, 0u64, 0u64);
    for i in 0..n {
        total += u64::from(ident(black_box(i as u8)));
        u8s += 1;
    }
    for i in 0..n + 1 {
        total += ident(black_box(i as i32)) as u64;
        i32s += 1;
    }
    for i in 0..n + 2 {
        total += ident(black_box(i));
        u64s += 1;
    }

    let mut shapes: Vec<Box<dyn Shape>> = Vec::new();
    let (mut squares, mut circles) = (0u64, 0u64);
    for i in 0..n {
        shapes.push(Box::new(Sq(i)));
        squares += 1;
    }
    for r in 1..=2 {
        shapes.push(Box::new(Circle(r)));
        circles += 1;
    }
    // Each shape's area is called once, through its vtable.
    for shape in black_box(&shapes).iter() {
        total += shape.area();
    }

    let double = |x: u64| x * 2;
    let triple = |x: u64| x * 3;
    let first: &dyn Fn(u64) -> u64 = black_box(&double);
    let second: &dyn Fn(u64) -> u64 = black_box(&triple);
    let (mut firsts, mut seconds) = (0u64, 0u64);
    for i in 0..n {
        total += first(i);
        firsts += 1;
    }
    for i in 0..2 * n {
        total += second(i);
        seconds += 1;
    }

    let mut scales = 0u64;
    for k in 1..=3 {
        total += geometry::inner::scale(black_box(n), k);
        scales += 1;
    }

    total += fib(black_box(n + 2));

    println!("total {total}");
    println!("calls zoo::ident::<u8> {u8s}");
    println!("calls zoo::ident::<i32> {i32s}");
    println!("calls zoo::ident::<u64> {u64s}");
    println!("calls <zoo::Sq as zoo::Shape>::area {squares}");
    println!("calls <zoo::Circle as zoo::Shape>::area {circles}");
    println!("calls zoo::main::{{closure#0}} {firsts}");
    println!("calls zoo::main::{{closure#1}} {seconds}");
    println!("calls zoo::geometry::inner::scale {scales}");
    println!("calls zoo::fib {}", FIB_CALLS.load(Ordering::Relaxed));
}

//! Inlined copies with several code ranges, copies in other modules and compile units,
//! a generic instance, numbered closures. Every inlined function counts its own runs in a
//! counter; `main` prints the counters at the end (`calls NAME N`): the oracle.
mod geo;

use std::env;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use geo::{Rect, Shape, Square};

static EXECUTE_CALLS: AtomicU64 = AtomicU64::new(0);
static HELPER_CALLS: AtomicU64 = AtomicU64::new(0);
static FILTER_CALLS: AtomicU64 = AtomicU64::new(0);
static LARGEST_CALLS: AtomicU64 = AtomicU64::new(0);
static MAP_CALLS: AtomicU64 = AtomicU64::new(0);
static SUM_TO_CALLS: AtomicU64 = AtomicU64::new(0);

/// A loop inside the copy, around a statement that is not its first.
#[inline(always)]
fn sum_to(n: u64) -> u64 {
    SUM_TO_CALLS.fetch_add(1, Ordering::Relaxed);
    let mut s = 0u64;
    for i in 0..black_box(n) {
        s = s.wrapping_add(black_box(i));
    }
    s
}

/// A loop inside the copy whose first statement is the loop itself.
#[inline(always)]
fn count_down(mut n: u64) -> u64 {
    let mut steps = 0;
    while black_box(n) > 0 {
        n /= 2;
        steps += 1;
    }
    steps
}

#[inline(never)]
fn loops_inside(n: u64) -> u64 {
    let mut acc = sum_to(n);
    for i in 0..n {
        acc = acc.wrapping_add(sum_to(i)).wrapping_add(count_down(i));
    }
    acc.wrapping_add(count_down(acc))
}

#[inline(always)]
fn execute(cmd: u64) -> u64 {
    EXECUTE_CALLS.fetch_add(1, Ordering::Relaxed);
    black_box(cmd).wrapping_mul(3).wrapping_add(1)
}

/// A loop of four iterations the optimizer unrolls: four ranges of one inlined copy.
#[inline(never)]
fn run_commands(cmds: &[u64; 4]) -> u64 {
    let mut total = 0u64;
    for &cmd in cmds {
        total = total.wrapping_add(execute(cmd));
    }
    total
}

#[inline(always)]
fn helper(x: u64, salt: u64) -> u64 {
    HELPER_CALLS.fetch_add(1, Ordering::Relaxed);
    if black_box(x) % 3 == salt {
        x.wrapping_mul(7)
    } else {
        x ^ salt
    }
}

/// An always-inlined helper called from three places in a loop, two of them conditional.
#[inline(never)]
fn three_sites(n: u64) -> u64 {
    let mut acc = 0u64;
    for i in 0..n {
        acc = acc.wrapping_add(helper(i, 1));
        if black_box(i) % 2 == 0 {
            acc = acc.wrapping_add(helper(acc, 2));
        }
        if black_box(i) % 5 == 1 {
            acc ^= helper(i + acc, 0);
        }
    }
    acc
}

#[inline(never)]
fn count_small(values: &[u64]) -> usize {
    values
        .iter()
        .filter(|v| {
            FILTER_CALLS.fetch_add(1, Ordering::Relaxed);
            **v < 10
        })
        .count()
}

#[inline]
fn largest<T: PartialOrd + Copy>(items: &[T]) -> T {
    LARGEST_CALLS.fetch_add(1, Ordering::Relaxed);
    let mut best = items[0];
    for &item in items {
        if item > best {
            best = item;
        }
    }
    best
}

#[inline(never)]
fn largest_u8(items: &[u8]) -> u8 {
    largest(items)
}

#[inline(never)]
fn largest_u32(items: &[u32]) -> u32 {
    largest(items)
}

#[inline(never)]
fn mapped(values: &[u64]) -> u64 {
    values
        .iter()
        .map(|v| {
            MAP_CALLS.fetch_add(1, Ordering::Relaxed);
            v * 2
        })
        .sum()
}

/// An async fn: its body is a closure-like state machine, `{async_fn_env#0}` in DWARF.
#[inline(never)]
async fn fetch_double(x: u64) -> u64 {
    black_box(x) * 2
}

struct Noop;

impl Wake for Noop {
    fn wake(self: Arc<Self>) {}
}

/// A minimal executor: polls a future that never waits until it is ready.
#[inline(never)]
fn block_on<F: Future>(future: F) -> F::Output {
    let waker = Waker::from(Arc::new(Noop));
    let mut context = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(value) = future.as_mut().poll(&mut context) {
            return value;
        }
    }
}

fn main() {
    let n: u64 = env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(13);
    let cmds = black_box([n, n + 1, n + 2, n + 3]);
    println!("run_commands = {}", run_commands(&cmds));
    println!("three_sites({n}) = {}", three_sites(n));
    let values: Vec<u64> = (0..5).map(|i| black_box(i * 7 + n % 3)).collect();
    println!("count_small = {}", count_small(&values));
    let bytes = black_box([3u8, 9, 4]);
    println!("largest_u8 = {}", largest_u8(&bytes));
    let words = black_box([30u32, 90, 40, 7]);
    println!("largest_u32 = {}", largest_u32(&words));
    println!("mapped = {}", mapped(&values));
    println!("loops_inside({n}) = {}", loops_inside(n));
    for i in 0..3 {
        println!("fetch_double({}) = {}", n + i, block_on(fetch_double(n + i)));
    }
    let doubled = block_on(async { fetch_double(n).await + 1 });
    println!("async block = {doubled}");

    let rects = black_box(vec![Rect { w: 2, h: 3 }, Rect { w: 4, h: n }, Rect { w: 1, h: 1 }]);
    println!("total_area = {}", geo::total_area(&rects));
    let squares = black_box(vec![Square { side: 3 }, Square { side: n }]);
    let mut sq = 0;
    for s in &squares {
        sq += s.area();
    }
    println!("square area = {sq}");
    let single = black_box(Rect { w: 5, h: 5 });
    println!("single area = {}", single.area());

    println!("calls execute {}", EXECUTE_CALLS.load(Ordering::Relaxed));
    println!("calls helper {}", HELPER_CALLS.load(Ordering::Relaxed));
    println!("calls filter {}", FILTER_CALLS.load(Ordering::Relaxed));
    println!("calls largest {}", LARGEST_CALLS.load(Ordering::Relaxed));
    println!("calls map {}", MAP_CALLS.load(Ordering::Relaxed));
    println!("calls sum_to {}", SUM_TO_CALLS.load(Ordering::Relaxed));
    // count_down has no counter: it runs once per loop iteration plus once after.
    println!("calls count_down {}", n + 1);
    println!("calls area {}", geo::AREA_CALLS.load(Ordering::Relaxed));
    println!("calls total_area {}", geo::TOTAL_CALLS.load(Ordering::Relaxed));
}

//! Locals that DWARF places in one stack slot for a whole function, which optimized code
//! keeps in registers part of the time; and a loop whose variable is written back to its
//! slot after the loop with the loop body's line number. Every value a test checks is
//! printed, or is arithmetic on the arguments.
//!
//! Lines are found by the `// probe:` markers, never by number.
use std::arch::asm;
use std::env;
use std::hint::black_box;
use std::ptr;

/// A semaphore-like flag, read volatile after the loop (as a USDT probe's semaphore is).
#[no_mangle]
pub static mut loops_flag: u16 = 0;

/// A probe-shaped `nop` in the loop (what a USDT probe leaves there).
#[inline(always)]
fn mark(value: u64) {
    unsafe { asm!("nop /* {0} */", in(reg) value, options(att_syntax, nostack, preserves_flags)) }
}

/// A running total the loop keeps in a register in release builds, while DWARF places it
/// in one stack slot for the whole function (`println!` borrows it after the loop): the
/// slot is written once after the loop, and on the path that skips the loop, both with
/// the loop body's line number.
#[inline(never)]
fn accumulate(id: u64, n: u64) -> u64 {
    let mut acc = 0u64;
    for k in 1..=n {
        acc = add_step(acc, k * id); // probe: accumulate-body
        mark(k);
    }
    if unsafe { ptr::read_volatile(ptr::addr_of!(loops_flag)) } != 0 {
        println!("flag set");
    }
    println!("accumulate({id}, {n}) = {acc}");
    acc
}

#[inline(never)]
fn add_step(a: u64, b: u64) -> u64 {
    black_box(a.wrapping_add(b))
}

/// `shown` is printed (so it gets a stack slot), then changed where nothing reads the slot
/// again: release code keeps the new value in a register and never writes it back.
#[inline(never)]
fn changed_after_print(seed: u64) -> u64 {
    let mut shown = seed;
    println!("shown before = {shown}");
    shown = black_box(shown.wrapping_mul(7));
    let result = black_box(shown.wrapping_add(1)); // probe: after-change
    println!("changed_after_print({seed}) = {result}");
    result
}

fn main() {
    let args: Vec<u64> = env::args().skip(1).map(|a| a.parse().expect("numbers")).collect();
    let n = args.first().copied().unwrap_or(3);
    let seed = args.get(1).copied().unwrap_or(5);
    accumulate(black_box(3), black_box(n));
    changed_after_print(black_box(seed));
}

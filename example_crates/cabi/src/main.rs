//! Rust calling C functions compiled by gcc (see build.rs), for pytest-uprobe's tests of
//! C functions: each C function prints its arguments and return value with `C <name> ...`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Pair { a: i32, b: i32 }
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Trio { x: u32, y: u32, z: u32 }
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Big { a: i64, b: i64, c: i64 }
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Mixed { d: f64, i: i32 }

extern "C" {
    fn c_add(a: i32, b: i32) -> i32;
    fn c_many(a: i64, b: i64, c: i64, d: i64, e: i64, f: i64, g: i64, h: i64) -> i64;
    fn c_pair(a: i32, b: i32) -> Pair;
    fn c_trio(x: u32) -> Trio;
    fn c_big(p: Pair) -> Big;
    fn c_mixed(i: i32) -> Mixed;
}

fn main() {
    let n: i32 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(3);
    for i in 1..=n {
        unsafe {
            c_add(i, 10 * i);
            c_many(i as i64, 2, 3, 4, 5, 6, 7, -8 * i as i64);
            let p = c_pair(i, -i);
            c_trio(7 * i as u32);
            c_big(p);
            c_mixed(i);
        }
    }
}

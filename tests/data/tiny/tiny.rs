// The program the parser tests read (see build.sh). It exits with status 48:
// sum = 1 + 2 + len("ab") + (1 + 2 + 3) + 4 = 15, areas = 2*3 + 3*1*1 + 0 = 9, (15 + 9) * 2 = 48.
#![no_std]
#![no_main]

use core::panic::PanicInfo;

pub struct Point {
    pub x: i32,
    pub y: i64,
}

pub enum Shape {
    Circle(u32),
    Rect { w: u16, h: u16 },
    Empty,
}

pub mod geo {
    #[inline(never)]
    pub fn area(s: &super::Shape) -> u64 {
        match s {
            super::Shape::Circle(r) => 3 * (*r as u64) * (*r as u64),
            super::Shape::Rect { w, h } => (*w as u64) * (*h as u64),
            super::Shape::Empty => 0,
        }
    }
}

#[inline(never)]
pub fn sum(p: &Point, name: &str, items: &[u8], flag: Option<u8>) -> i64 {
    let mut total = p.x as i64 + p.y + name.len() as i64;
    for i in items {
        total += *i as i64;
    }
    if let Some(f) = flag {
        total += f as i64;
    }
    total
}

#[inline(always)]
fn twice(v: u64) -> u64 {
    v * 2
}

#[no_mangle]
pub extern "C" fn _start() -> ! {
    let p = Point { x: 1, y: 2 };
    let items = [1u8, 2, 3];
    let a = sum(&p, "ab", &items, Some(4));
    let b = geo::area(&Shape::Rect { w: 2, h: 3 }) + geo::area(&Shape::Circle(1)) + geo::area(&Shape::Empty);
    // Volatile reads keep the inlined copies of `twice` from being folded into constants.
    let one = unsafe { core::ptr::read_volatile(&1u64) };
    let c = twice(a as u64 * one) + twice(b * one);
    unsafe { core::arch::asm!("mov edi, {0:e}", "mov eax, 60", "syscall", in(reg) c as u32, options(noreturn)) }
}

#[panic_handler]
fn panic(_: &PanicInfo) -> ! {
    loop {}
}

#[no_mangle]
pub extern "C" fn rust_eh_personality() {}

//! A module of its own: its functions are inlined into `main`, in another module (and, with
//! several codegen units, possibly another compile unit).
use std::sync::atomic::{AtomicU64, Ordering};

pub static AREA_CALLS: AtomicU64 = AtomicU64::new(0);
pub static TOTAL_CALLS: AtomicU64 = AtomicU64::new(0);

pub trait Shape {
    fn area(&self) -> u64;
}

pub struct Rect {
    pub w: u64,
    pub h: u64,
}

pub struct Square {
    pub side: u64,
}

impl Shape for Rect {
    #[inline]
    fn area(&self) -> u64 {
        AREA_CALLS.fetch_add(1, Ordering::Relaxed);
        self.w * self.h
    }
}

impl Shape for Square {
    #[inline]
    fn area(&self) -> u64 {
        AREA_CALLS.fetch_add(1, Ordering::Relaxed);
        self.side * self.side
    }
}

#[inline]
pub fn total_area(rects: &[Rect]) -> u64 {
    TOTAL_CALLS.fetch_add(1, Ordering::Relaxed);
    let mut total = 0;
    for r in rects {
        total += r.area();
    }
    total
}

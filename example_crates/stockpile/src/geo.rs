//! Shapes laid out on the warehouse floor.

use std::fmt;

pub trait Shape: fmt::Debug + Send {
    fn area(&self) -> u64;
    fn label(&self) -> String {
        format!("{:?}", self)
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Square {
    pub side: u64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rect {
    pub w: u64,
    pub h: u64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tri {
    pub base: u64,
    pub height: u64,
}

impl Shape for Square {
    #[inline(never)]
    fn area(&self) -> u64 {
        let r = self.side * self.side;
        println!("CALL Square::area ({},) -> {}", self.side, r);
        r
    }
}

impl Shape for Rect {
    #[inline(never)]
    fn area(&self) -> u64 {
        let r = self.w * self.h;
        println!("CALL Rect::area ({}, {}) -> {}", self.w, self.h, r);
        r
    }
}

impl Shape for Tri {
    #[inline(never)]
    fn area(&self) -> u64 {
        let r = half(self.base * self.height);
        println!("CALL Tri::area ({}, {}) -> {}", self.base, self.height, r);
        r
    }
    fn label(&self) -> String {
        format!("triangle {}x{}", self.base, self.height)
    }
}

/// Small helper the optimizer is expected to inline.
#[inline]
pub fn half(x: u64) -> u64 {
    x / 2
}

/// Sum of the areas of every shape (dynamic dispatch through trait objects).
#[inline(never)]
pub fn total_area(shapes: &[Box<dyn Shape>]) -> u64 {
    let t = shapes.iter().map(|s| s.area()).sum();
    println!("CALL total_area ({},) -> {}", shapes.len(), t);
    t
}

/// Build a shape from a (kind, a, b) triple.
pub fn make_shape(kind: u32, a: u64, b: u64) -> Box<dyn Shape> {
    match kind % 3 {
        0 => Box::new(Square { side: a }),
        1 => Box::new(Rect { w: a, h: b }),
        _ => Box::new(Tri { base: a, height: b }),
    }
}

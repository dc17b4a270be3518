//! Trait methods with the same body, in a library: a release build keeps both names (their
//! symbols are exported), at one address.

use std::hint::black_box;

pub trait Weigh {
    fn weight(&self) -> u64;
}

pub struct Apple(pub u64);
pub struct Pear(pub u64);

impl Weigh for Apple {
    #[inline(never)]
    fn weight(&self) -> u64 {
        black_box(self.0).wrapping_mul(40503) ^ 0x77
    }
}

impl Weigh for Pear {
    #[inline(never)]
    fn weight(&self) -> u64 {
        black_box(self.0).wrapping_mul(40503) ^ 0x77
    }
}

//! Pricing rules: trait objects chosen at run time.
use std::fmt::Debug;

pub trait Pricing: Debug {
    /// Price of one unit, in cents, when `qty` units are bought.
    fn unit_cents(&self, qty: u32) -> u64;
    fn label(&self) -> &str;
}

#[derive(Debug, Clone)]
pub struct Flat {
    pub cents: u64,
}

#[derive(Debug, Clone)]
pub struct Tiered {
    pub tiers: Vec<(u32, u64)>,
    pub fallback: u64,
}

#[derive(Debug, Clone)]
pub struct Bulk {
    pub base: u64,
    pub pct_off: u8,
    pub min_qty: u32,
}

impl Pricing for Flat {
    #[inline(never)]
    fn unit_cents(&self, _qty: u32) -> u64 {
        self.cents
    }
    fn label(&self) -> &str {
        "flat"
    }
}

impl Pricing for Tiered {
    #[inline(never)]
    fn unit_cents(&self, qty: u32) -> u64 {
        self.tiers
            .iter()
            .filter(|(min, _)| qty >= *min)
            .map(|(_, c)| *c)
            .min()
            .unwrap_or(self.fallback)
    }
    fn label(&self) -> &str {
        "tiered"
    }
}

impl Pricing for Bulk {
    #[inline(never)]
    fn unit_cents(&self, qty: u32) -> u64 {
        if qty >= self.min_qty {
            self.base * (100 - self.pct_off as u64) / 100
        } else {
            self.base
        }
    }
    fn label(&self) -> &str {
        "bulk"
    }
}

/// Total for `qty` units under one rule (a `&dyn Pricing`).
#[inline(never)]
pub fn quote(rule: &dyn Pricing, qty: u32) -> u64 {
    rule.unit_cents(qty) * qty as u64
}

/// Index of the rule giving the lowest total (a slice of `Box<dyn Pricing>`).
#[inline(never)]
pub fn cheapest(rules: &[Box<dyn Pricing>], qty: u32) -> Option<usize> {
    rules
        .iter()
        .enumerate()
        .min_by_key(|(_, r)| quote(r.as_ref(), qty))
        .map(|(i, _)| i)
}

/// Consumes a boxed rule (a `Box<dyn Pricing>` by value).
#[inline(never)]
pub fn settle(rule: Box<dyn Pricing>, qty: u32) -> u64 {
    let total = quote(rule.as_ref(), qty);
    total + rule.label().len() as u64
}

/// Generic over the element and the key closure.
#[inline(never)]
pub fn max_key<T, F: Fn(&T) -> u64>(xs: &[T], key: F) -> Option<u64> {
    xs.iter().map(|x| key(x)).max()
}

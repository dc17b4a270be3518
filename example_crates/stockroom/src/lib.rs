//! stockroom: a small inventory and order pipeline.
pub mod jobs;
pub mod pricing;

use pricing::Pricing;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub sku: String,
    pub qty: u32,
    pub cents: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StockError {
    Unknown(String),
    Short { sku: String, have: u32, want: u32 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Priority {
    Low,
    Normal,
    Rush,
}

#[derive(Debug, Clone)]
pub struct Order {
    pub id: u64,
    pub customer: String,
    pub lines: Vec<(String, u32)>,
    pub priority: Priority,
}

pub struct Inventory {
    pub stock: HashMap<String, u32>,
    pub catalog: BTreeMap<u32, String>,
    pub root: PathBuf,
}

pub fn sku_name(i: u32) -> String {
    format!("sku-{:03}", i)
}

impl Inventory {
    /// `n_skus` SKUs with deterministic stock levels; a catalog of `n_codes` codes.
    pub fn new(root: &str, n_skus: u32, n_codes: u32) -> Self {
        let stock = (0..n_skus).map(|i| (sku_name(i), (i * 7) % 23)).collect();
        let catalog = (0..n_codes).map(|c| (c * 5 + 100, sku_name(c % n_skus.max(1)))).collect();
        Inventory { stock, catalog, root: PathBuf::from(root) }
    }

    #[inline(never)]
    pub fn reserve(&mut self, sku: &str, qty: u32) -> Result<u32, StockError> {
        match self.stock.get_mut(sku) {
            None => Err(StockError::Unknown(sku.to_string())),
            Some(have) if *have < qty => Err(StockError::Short { sku: sku.to_string(), have: *have, want: qty }),
            Some(have) => {
                *have -= qty;
                Ok(*have)
            }
        }
    }

    #[inline(never)]
    pub fn low_stock(&self, threshold: u32) -> Vec<String> {
        let mut v: Vec<String> = self
            .stock
            .iter()
            .filter(|(_, q)| **q < threshold)
            .map(|(s, _)| s.clone())
            .collect();
        v.sort();
        v
    }
}

/// A HashMap with many entries.
#[inline(never)]
pub fn total_units(stock: &HashMap<String, u32>) -> u64 {
    stock.values().map(|q| *q as u64).sum()
}

/// A HashMap small enough to arrive whole.
#[inline(never)]
pub fn sum_small(m: &HashMap<String, u32>) -> u32 {
    m.values().sum()
}

/// A BTreeMap with more than 100 entries.
#[inline(never)]
pub fn catalog_lookup(catalog: &BTreeMap<u32, String>, code: u32) -> Option<String> {
    catalog.get(&code).cloned()
}

#[inline(never)]
pub fn drain_backlog(q: &mut VecDeque<u64>, max: usize) -> u64 {
    let mut sum = 0;
    for _ in 0..max {
        match q.pop_front() {
            Some(v) => sum += v,
            None => break,
        }
    }
    sum
}

#[inline(never)]
pub fn distinct_customers(names: &HashSet<String>) -> usize {
    names.iter().filter(|n| !n.is_empty()).count()
}

#[inline(never)]
pub fn archive_path(root: &Path, order_id: u64) -> PathBuf {
    root.join(format!("{:04}", order_id % 10000)).join("order.json")
}

#[inline(never)]
pub fn bump_shared(counter: &Rc<RefCell<u32>>, by: u32) -> u32 {
    let mut c = counter.borrow_mut();
    *c += by;
    *c
}

#[inline(never)]
pub fn ledger_push(ledger: &Arc<Mutex<Vec<u64>>>, cents: u64) -> usize {
    let mut l = ledger.lock().unwrap();
    l.push(cents);
    l.len()
}

#[inline(never)]
pub fn average_cents(items: &[Item]) -> f64 {
    if items.is_empty() {
        return 0.0;
    }
    items.iter().map(|i| i.cents as f64).sum::<f64>() / items.len() as f64
}

#[inline(never)]
pub fn fill_ratio(done: u64, total: u64) -> f64 {
    done as f64 / total as f64
}

/// Small and `#[inline]`: a release build folds it into its callers.
#[inline]
pub fn line_total(qty: u32, unit: u64) -> u64 {
    qty as u64 * unit
}

#[inline(never)]
pub fn order_value(order: &Order, rule: &dyn Pricing) -> u64 {
    order
        .lines
        .iter()
        .map(|(_, qty)| line_total(*qty, rule.unit_cents(*qty)))
        .sum()
}

#[inline(never)]
pub fn classify(order: &Order) -> Priority {
    let units: u32 = order.lines.iter().map(|(_, q)| *q).sum();
    if order.customer.starts_with("vip") || units > 50 {
        Priority::Rush
    } else if units > 10 {
        Priority::Normal
    } else {
        Priority::Low
    }
}

#[inline(never)]
pub fn tally(orders: &[Order]) -> BTreeMap<Priority, usize> {
    let mut m = BTreeMap::new();
    for o in orders {
        *m.entry(o.priority).or_insert(0) += 1;
    }
    m
}

/// A rolling checksum: the loop body is worth a line probe.
#[inline(never)]
pub fn checksum(data: &[u8]) -> u32 {
    let mut acc: u32 = 7;
    let mut n: u32 = 0;
    for &b in data {
        acc = acc.rotate_left(5) ^ (b as u32);
        n += 1;
    }
    acc.wrapping_add(n)
}

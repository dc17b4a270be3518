// Line shapes whose execution counts a user checks: each `// count: EXPR` marker gives how
// many times its line executes for the input `n` (the program's argument count), by the
// definition in docs/lines-and-usdt.md (gcov's: every arrival at the line from another
// line, and every pass of a loop written on the line). The program prints what it did.
use std::hint::black_box;

pub trait Rule {
    fn label(&self) -> &str;
}
pub struct Bulk(pub u64);
impl Rule for Bulk {
    #[inline(never)]
    fn label(&self) -> &str {
        "bulk"
    }
}

#[inline(never)]
pub fn settle(rule: Box<dyn Rule>, total: u64) -> u64 {
    total + rule.label().len() as u64 // count: n
}

pub struct Tier {
    pub min_qty: u64,
}
impl Tier {
    #[inline(never)]
    pub fn applies(&self, qty: u64) -> bool {
        if qty >= self.min_qty { // count: 2 * n + 1
            return true; // count: n + 1
        }
        false // count: n
    }
}

impl Tier {
    #[inline(never)]
    pub fn unit_cents(&self, qty: u64) -> u64 {
        if qty >= self.min_qty { // count: n
            self.min_qty * 90 / 100 + qty // count: n - 1
        } else {
            qty // count: 1
        }
    }
}

#[inline(never)]
pub fn classify(customer: &str, units: u64) -> u64 {
    if customer.starts_with("vip") || units > 50 { // count: n
        2 // count: (n + 1) // 2 + len([i for i in range(1, n, 2) if i * 20 > 50])
    } else {
        1
    }
}

pub fn sku_name(i: u64) -> String {
    let name = format!("sku-{i:03}"); // count: 2 * n
    name
} // count: 2 * n

#[inline(never)]
pub fn names(n: u64) -> usize {
    let all: Vec<String> = (0..n).map(sku_name).collect(); // count: n
    all.iter().map(|s| s.len()).sum::<usize>() + sku_name(n).len() // count: 2 * n
}

#[inline(never)]
pub fn either(a: u64, b: u64) -> u64 {
    if a > 3 || b > 3 { // count: n
        a + b
    } else {
        0
    }
}

#[inline(never)]
pub fn doubled(n: u64) -> Vec<u64> {
    let v: Vec<u64> = (0..n).map(|x| x * 2).collect(); // count: n + 1
    v
}

#[inline(never)]
pub fn squares(n: u64) -> u64 {
    let mut total = 0;
    for i in 0..n { // count: n + 1
        let sq = black_box(i * i); // count: n
        total += sq; // count: n
    }
    total // count: 1
}

#[inline(never)]
pub fn six() -> u64 {
    let mut acc = 1u64;
    for v in 1..=6 { // count: 7
        acc = acc.wrapping_mul(31).wrapping_add(black_box(v)); // count: 6
    }
    acc // count: 1
}

#[inline(never)]
pub fn nine(xs: &[u64; 9]) -> u64 {
    let mut acc = 0u64;
    for i in 0..9 { // count: 10
        acc = acc.wrapping_mul(7) ^ xs[i]; // count: 9
    }
    acc // count: 1
}

#[inline(never)]
pub fn countdown(mut k: u64) -> u64 {
    let mut steps = 0;
    while k > 0 { // count: n + 1
        k = black_box(k - 1); // count: n
        steps += 1; // count: n
    }
    steps // count: 1
}

fn main() {
    let n = std::env::args().count() as u64;
    let tier = Tier { min_qty: 1 };
    let mut total = 0;
    for i in 0..n {
        total += settle(Box::new(Bulk(i)), i);
        total += tier.applies(i + 1) as u64 + tier.applies(0) as u64;
        total += either(i, n);
        total += tier.unit_cents(i);
        total += classify(if i % 2 == 0 { "vip-1" } else { "acme" }, i * 20);
        total += names(1) as u64;
    }
    total += tier.applies(5) as u64;
    total += doubled(n).iter().sum::<u64>();
    total += squares(n) + six() + countdown(n);
    total += nine(&[1, 2, 3, 4, 5, 6, 7, 8, black_box(n)]);
    total += linecount::lib_total(n);
    println!("n={n} total={total}");
}

//! A user's report (pytest-uprobe, finding s5): with debug = "line-tables-only", core's
//! `str::parse::<T>` inlined into this crate was counted as `ltonly::parse`, and
//! `Parser::prec` inlined into `Parser::parse_expr` could not be found.
//! Every call prints a line, so tests count from the output.

use std::hint::black_box;

mod ops {
    /// A module function, inlined into `Parser::parse_expr` in release builds.
    #[inline]
    pub fn weight(op: char) -> u32 {
        println!("@@ weight {op}");
        if op == '*' || op == '/' { 2 } else { 1 }
    }
}

struct Parser {
    ops: Vec<char>,
}

impl Parser {
    #[inline]
    fn prec(&self, op: char) -> u32 {
        println!("@@ prec {op}");
        match op {
            '+' | '-' => 1,
            '*' | '/' => 2,
            _ => 0,
        }
    }

    #[inline(never)]
    fn parse_expr(&self) -> u32 {
        let mut total = 0;
        for &op in &self.ops {
            total += self.prec(black_box(op)) * ops::weight(black_box(op));
        }
        total
    }
}

#[inline(never)]
pub fn parse(s: &str) -> usize {
    println!("@@ parse {s}");
    // core's str::parse::<u64>, inlined into this `fn parse`: DWARF names it `parse<u64>`
    let number = s.parse::<u64>().unwrap_or(1) as usize;
    s.bytes().map(|b| b as usize * 31).fold(number, |a, b| a ^ b.rotate_left(3))
}

/// Two instances only (`::<u32>`, `::<char>`): `largest::<u8>` is never made.
#[inline(never)]
pub fn largest<T: PartialOrd + Copy + std::fmt::Debug>(xs: &[T]) -> T {
    let mut best = xs[0];
    for &x in xs {
        if x > best {
            best = x;
        }
    }
    println!("@@ largest {best:?}");
    best
}

/// Inlined into `main` twice on one line (LLVM splits the second copy's DWARF in two); its first instructions are std's (an iterator's), so where a
/// run of its own code begins needs the line its `fn` is on (the source says; DWARF not).
#[inline]
fn tally(words: &[String]) -> usize {
    let long = words.iter().filter(|w| w.len() > 1).count();
    println!("@@ tally {long}");
    long
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // core's str::parse::<usize> and ::<f64>, inlined here: not `ltonly::parse`
    let k: usize = args[0].parse().unwrap();
    let x: f64 = args[0].parse().unwrap();
    for a in &args {
        println!("parse({a:?}) -> {}", parse(a) + k);
    }
    let scale: f64 = args.iter().map(|a| a.parse::<f64>().unwrap_or(0.0)).sum::<f64>() + x;
    let long = tally(&args) + tally(&args[1..]);
    let top = (largest(&black_box([3u32, 9, 4])), largest(&black_box(['q', 'z', 'a'])));
    let parser = Parser { ops: "+*-/+".chars().collect() };
    println!("parse_expr -> {} (scale {scale}, {long} long, {top:?})", parser.parse_expr());
}

//! stockpile: a tiny inventory / pricing engine.
//!
//! Usage: stockpile [ITEM ...] [-- CMD ...]
//!   ITEM  name:qty:price   (e.g. apple:3:10)
//!   CMD   add:N | mul:N | neg | set:N | div:N
//!
//! Every call worth checking is printed as
//!   CALL <function> <python tuple of args> -> <python literal result>
//! and counters are printed as `COUNT <name>=<n>` at the end.

mod geo;
mod usdt;

use geo::Shape;
use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;

static FIB_CALLS: AtomicU64 = AtomicU64::new(0);
static CLAMP_CALLS: AtomicU64 = AtomicU64::new(0);
static SQ_CALLS: AtomicU64 = AtomicU64::new(0);

#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub name: String,
    pub qty: u32,
    pub price: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Cmd {
    Add(i64),
    Mul(i64),
    Neg,
    Set { value: i64 },
    Div(i64),
}

/// A pricing rule: a name and a predicate stored as a boxed closure.
pub struct Rule {
    pub name: String,
    check: Box<dyn Fn(u64) -> bool + Send + Sync>,
}

impl Rule {
    pub fn new(name: &str, check: impl Fn(u64) -> bool + Send + Sync + 'static) -> Rule {
        Rule { name: name.to_string(), check: Box::new(check) }
    }

    #[inline(never)]
    pub fn matches(&self, score: u64) -> bool {
        (self.check)(score)
    }
}

/// Parse `name:qty:price`.
#[inline(never)]
fn parse_item(spec: &str) -> Option<Item> {
    let mut parts = spec.split(':');
    let name = parts.next()?.to_string();
    let qty = parts.next()?.parse().ok()?;
    let price = parts.next()?.parse().ok()?;
    let item = Item { name, qty, price };
    Some(item)
}

/// Parse one command.
#[inline(never)]
fn parse_cmd(spec: &str) -> Option<Cmd> {
    let (op, arg) = match spec.split_once(':') {
        Some((op, arg)) => (op, arg.parse::<i64>().ok()),
        None => (spec, None),
    };
    match (op, arg) {
        ("add", Some(n)) => Some(Cmd::Add(n)),
        ("mul", Some(n)) => Some(Cmd::Mul(n)),
        ("neg", None) => Some(Cmd::Neg),
        ("set", Some(n)) => Some(Cmd::Set { value: n }),
        ("div", Some(n)) => Some(Cmd::Div(n)),
        _ => None,
    }
}

/// Saturating add, clamped to +-1_000_000. Called from several places.
#[inline(never)]
fn clamp_add(a: i64, b: i64) -> i64 {
    CLAMP_CALLS.fetch_add(1, Ordering::Relaxed);
    a.saturating_add(b).clamp(-1_000_000, 1_000_000)
}

#[inline(never)]
fn checked_div(a: i64, b: i64) -> Result<i64, String> {
    if b == 0 {
        Err(format!("division of {} by zero", a))
    } else {
        Ok(a / b)
    }
}

/// Apply one command to the accumulator.
#[inline(never)]
fn apply(acc: i64, cmd: &Cmd) -> i64 {
    let r = match cmd {
        Cmd::Add(n) => clamp_add(acc, *n),
        Cmd::Mul(n) => acc.saturating_mul(*n).clamp(-1_000_000, 1_000_000),
        Cmd::Neg => -acc,
        Cmd::Set { value } => *value,
        Cmd::Div(n) => match checked_div(acc, *n) {
            Ok(v) => v,
            Err(e) => {
                println!("ERROR {}", e);
                acc
            }
        },
    };
    println!("CALL apply ({}, {}) -> {}", acc, cmd_repr(cmd), r);
    r
}

/// Python-literal form of a command, for the test harness.
fn cmd_repr(cmd: &Cmd) -> String {
    match cmd {
        Cmd::Add(n) => format!("('Add', {})", n),
        Cmd::Mul(n) => format!("('Mul', {})", n),
        Cmd::Neg => "('Neg', None)".to_string(),
        Cmd::Set { value } => format!("('Set', {{'value': {}}})", value),
        Cmd::Div(n) => format!("('Div', {})", n),
    }
}

#[inline(always)]
fn sq(x: u64) -> u64 {
    SQ_CALLS.fetch_add(1, Ordering::Relaxed);
    x * x
}

/// Score of an item: price * qty * weight + qty^2 (uses the inlined `sq`).
#[inline(never)]
fn score(item: &Item, weight: u64) -> u64 {
    let r = item.price * item.qty as u64 * weight + sq(item.qty as u64);
    println!(
        "CALL score ({{'name': {:?}, 'qty': {}, 'price': {}}}, {}) -> {}",
        item.name, item.qty, item.price, weight, r
    );
    r
}

/// Largest element of a non-empty slice; generic, used with several types.
#[inline(never)]
fn largest<T: PartialOrd + Copy + Debug>(items: &[T]) -> T {
    let mut best = items[0];
    for &x in items {
        if x > best {
            best = x;
        }
    }
    println!("CALL largest<{}> ({:?},) -> {:?}", std::any::type_name::<T>(), items, best);
    best
}

/// Naive recursive Fibonacci.
#[inline(never)]
fn fib(n: u32) -> u64 {
    FIB_CALLS.fetch_add(1, Ordering::Relaxed);
    if n < 2 {
        n as u64
    } else {
        fib(n - 1) + fib(n - 2)
    }
}

#[derive(Debug)]
enum Tree {
    Leaf(i64),
    Node(Box<Tree>, Box<Tree>),
}

fn build_tree(depth: u32, seed: i64) -> Tree {
    if depth == 0 {
        Tree::Leaf(seed)
    } else {
        Tree::Node(Box::new(build_tree(depth - 1, seed * 2)), Box::new(build_tree(depth - 1, seed * 2 + 1)))
    }
}

/// Recursive sum of the leaves.
#[inline(never)]
fn tree_sum(t: &Tree) -> i64 {
    match t {
        Tree::Leaf(v) => *v,
        Tree::Node(l, r) => tree_sum(l) + tree_sum(r),
    }
}

/// Count words (a HashMap).
#[inline(never)]
fn tally(words: &[String]) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for w in words {
        *m.entry(w.clone()).or_insert(0) += 1;
    }
    m
}

#[inline(never)]
fn find_item<'a>(items: &'a [Item], name: &str) -> Option<&'a Item> {
    let r = items.iter().find(|i| i.name == name);
    println!("CALL find_item ({:?},) -> {}", name, r.map(|i| format!("{:?}", i.name)).unwrap_or("None".into()));
    r
}

/// Worker thread body: adds 1..=n with clamp_add.
#[inline(never)]
fn worker(id: u32, n: u64) -> i64 {
    let mut acc = 0i64;
    for k in 1..=n {
        acc = clamp_add(acc, k as i64 * id as i64);
        usdt::progress(id as u64, k);
    }
    if usdt::progress_enabled() {
        println!("PROGRESS_TRACED worker={}", id);
    }
    println!("CALL worker ({}, {}) -> {}", id, n, acc);
    acc
}

/// Apply a function to every element (generic over the closure type).
#[inline(never)]
fn map_all<T: Copy, U, F: Fn(T) -> U>(xs: &[T], f: F) -> Vec<U> {
    xs.iter().map(|&x| f(x)).collect()
}

/// Mean of a slice of floats.
#[inline(never)]
fn mean(xs: &[f64]) -> f64 {
    let m = if xs.is_empty() { 0.0 } else { xs.iter().sum::<f64>() / xs.len() as f64 };
    println!("CALL mean ({:?},) -> {:?}", xs, m);
    m
}

/// Weighted value: float and integer arguments mixed.
#[inline(never)]
fn weighted(x: f64, w: u32) -> f64 {
    let r = x * w as f64;
    println!("CALL weighted ({:?}, {}) -> {:?}", x, w, r);
    r
}

/// Half of an even number; panics on odd input.
#[inline(never)]
fn checked_half(n: u64) -> u64 {
    if n % 2 == 1 {
        panic!("odd input {}", n);
    }
    let r = n / 2;
    println!("CALL checked_half ({},) -> {}", n, r);
    r
}

/// Runs checked_half on its own thread; a panic is reported, not propagated.
#[inline(never)]
fn half_in_thread(n: u64) -> Option<u64> {
    let r = thread::spawn(move || checked_half(n)).join().ok();
    println!("CALL half_in_thread ({},) -> {}", n, r.map(|v| v.to_string()).unwrap_or("None".into()));
    r
}

/// Sum of a long list (more elements than the tracer copies by default).
#[inline(never)]
fn sum_all(xs: &[u32]) -> u64 {
    let r = xs.iter().map(|&x| x as u64).sum();
    println!("CALL sum_all ({:?},) -> {}", xs, r);
    r
}

/// Exits the process from inside a call.
#[inline(never)]
fn finish(code: i32) -> ! {
    println!("CALL finish ({},) -> exit", code);
    std::process::exit(code)
}

/// Sleeps, for timeout tests.
#[inline(never)]
fn nap(ms: u64) -> u64 {
    println!("CALL nap ({},) -> ...", ms);
    std::thread::sleep(std::time::Duration::from_millis(ms));
    ms
}

/// Runs this program again as a child process in `stats` mode.
#[inline(never)]
fn run_child(xs: &[String]) -> i32 {
    let exe = std::env::current_exe().expect("current_exe");
    let out = std::process::Command::new(exe).arg("stats").args(xs).output().expect("spawn child");
    print!("{}", String::from_utf8_lossy(&out.stdout));
    let code = out.status.code().unwrap_or(-1);
    println!("CALL run_child ({},) -> {}", xs.len(), code);
    code
}

/// `stockpile stats X...` and `stockpile halves N...` modes.
fn extra_modes(args: &[String]) -> bool {
    match args.first().map(|s| s.as_str()) {
        Some("stats") => {
            let xs: Vec<f64> = args[1..].iter().filter_map(|a| a.parse().ok()).collect();
            let m = mean(&xs);
            let ws: Vec<f64> = xs.iter().enumerate().map(|(i, &x)| weighted(x, i as u32 + 1)).collect();
            println!("STATS mean={:?} weighted={:?}", m, ws);
            let long: Vec<u32> = (1..=xs.len() as u32 * 10).collect();
            sum_all(&long);
            true
        }
        Some("halves") => {
            let ns: Vec<u64> = args[1..].iter().filter_map(|a| a.parse().ok()).collect();
            let ok = ns.iter().filter(|&&n| half_in_thread(n).is_some()).count();
            println!("HALVES_OK {}", ok);
            true
        }
        Some("exit") => {
            let code: i32 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(3);
            println!("before exit");
            finish(code)
        }
        Some("nap") => {
            for a in &args[1..] {
                nap(a.parse().unwrap_or(1));
            }
            true
        }
        Some("child") => {
            let code = run_child(&args[1..]);
            println!("CHILD_EXIT {}", code);
            true
        }
        _ => false,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if extra_modes(&args) {
        return;
    }
    let split = args.iter().position(|a| a == "--").unwrap_or(args.len());
    let (item_specs, cmd_specs) = (&args[..split], if split < args.len() { &args[split + 1..] } else { &[][..] });

    // 1. items
    let mut items: Vec<Item> = Vec::new();
    for spec in item_specs {
        let it = parse_item(spec);
        match &it {
            Some(i) => println!(
                "CALL parse_item ({:?},) -> {{'name': {:?}, 'qty': {}, 'price': {}}}",
                spec, i.name, i.qty, i.price
            ),
            None => println!("CALL parse_item ({:?},) -> None", spec),
        }
        items.extend(it);
    }

    // 2. scores via a closure passed to an iterator
    let weight = items.len() as u64;
    let scores: Vec<u64> = items.iter().map(|it| score(it, weight)).collect();

    // 3. generic instances
    if !items.is_empty() {
        let qtys: Vec<u32> = items.iter().map(|i| i.qty).collect();
        let prices_i: Vec<i64> = items.iter().map(|i| -(i.price as i64)).collect();
        largest(&scores);
        largest(&qtys);
        largest(&prices_i);
        let names: Vec<u8> = items.iter().map(|i| i.name.as_bytes()[0]).collect();
        largest(&names);
    }

    // 4. trait objects
    let shapes: Vec<Box<dyn Shape>> = items
        .iter()
        .enumerate()
        .map(|(k, it)| geo::make_shape(k as u32, it.qty as u64, it.price))
        .collect();
    let area = geo::total_area(&shapes);
    for s in &shapes {
        println!("LABEL {}", s.label());
    }
    let halves = map_all(&scores, |s| geo::half(s));
    println!("HALVES {:?}", halves);
    let doubled = map_all(&[1u8, 2, 3], |x| x as u32 * 2);
    println!("DOUBLED {:?}", doubled);

    // 5. rules: closures stored in structs
    let threshold = area;
    let rules = vec![
        Rule::new("even", |s| s % 2 == 0),
        Rule::new("over_area", move |s| s > threshold),
        Rule::new("nonzero", |s| s != 0),
    ];
    let mut rule_hits: HashMap<&str, usize> = HashMap::new();
    for s in &scores {
        for r in &rules {
            let m = r.matches(*s);
            println!("CALL Rule::matches ({:?}, {}) -> {}", r.name, s, if m { "True" } else { "False" });
            if m {
                *rule_hits.entry(r.name.as_str()).or_insert(0) += 1;
            }
        }
    }
    let mut hits: Vec<_> = rule_hits.into_iter().collect();
    hits.sort();
    println!("RULE_HITS {:?}", hits);

    // 6. commands
    let cmds: Vec<Cmd> = cmd_specs.iter().filter_map(|c| parse_cmd(c)).collect();
    let mut acc: i64 = scores.iter().sum::<u64>() as i64;
    println!("ACC_START {}", acc);
    for c in &cmds {
        acc = apply(acc, c);
    }
    println!("ACC_END {}", acc);
    let bonus = clamp_add(acc, area as i64);
    println!("CALL clamp_add ({}, {}) -> {}", acc, area, bonus);

    // 7. lookups
    for name in ["apple", "kiwi"] {
        find_item(&items, name);
    }

    // 8. recursion
    let n = (items.len() as u32 + 5).min(20);
    let f = fib(n);
    println!("CALL fib ({},) -> {}", n, f);
    let tree = build_tree(3, items.len() as i64);
    let ts = tree_sum(&tree);
    println!("CALL tree_sum (3,) -> {}", ts);

    // 9. tally
    let words: Vec<String> = items.iter().map(|i| i.name.clone()).chain(["apple".to_string()]).collect();
    let t = tally(&words);
    let mut tv: Vec<_> = t.iter().collect();
    tv.sort();
    println!("TALLY {:?}", tv);

    // 10. threads
    let handles: Vec<_> = (1..=3u32)
        .map(|id| thread::spawn(move || worker(id, 4 + id as u64)))
        .collect();
    let total: i64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    println!("THREADS_TOTAL {}", total);

    println!("COUNT fib={}", FIB_CALLS.load(Ordering::Relaxed));
    println!("COUNT clamp_add={}", CLAMP_CALLS.load(Ordering::Relaxed));
    println!("COUNT sq={}", SQ_CALLS.load(Ordering::Relaxed));
}

//! Recursion that release builds turn (partly) into loops, ordinary loops that must keep
//! exact counts, and two private functions with identical bodies that LLVM merges.
//! The tests compute every expected count from the arguments it prints.

use std::hint::black_box;

/// Two calls of itself; LLVM keeps the first and turns the second into a loop.
#[inline(never)]
fn fib(n: u32) -> u64 {
    if n < 2 {
        n as u64
    } else {
        fib(n - 1) + fib(n - 2)
    }
}

enum Tree {
    Leaf(i64),
    Node(Box<Tree>, Box<Tree>),
}

fn build(depth: u32, seed: i64) -> Tree {
    if depth == 0 {
        Tree::Leaf(seed)
    } else {
        Tree::Node(Box::new(build(depth - 1, seed * 2)), Box::new(build(depth - 1, seed * 2 + 1)))
    }
}

impl Tree {
    /// A method calling itself on both children.
    #[inline(never)]
    fn sum(&self) -> i64 {
        match self {
            Tree::Leaf(v) => *v,
            Tree::Node(l, r) => l.sum() + r.sum(),
        }
    }
}

/// Tail recursion only: a release build has no call of itself left.
#[inline(never)]
fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// The same with no attribute: its calls of itself all become a loop, and then the loop
/// is inlined into its one caller, leaving no function of its own.
fn gcd_inlined(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd_inlined(b, a % b)
    }
}

/// Recursion with an accumulator (`n + sum_to(n - 1)`).
#[inline(never)]
fn sum_to(n: u64) -> u64 {
    if n == 0 {
        0
    } else {
        n.wrapping_add(sum_to(n - 1))
    }
}

/// Recursion through a path (`Self::`-less, crate-qualified).
#[inline(never)]
fn countdown(n: u32, acc: u64) -> u64 {
    if n == 0 {
        acc
    } else {
        crate::countdown(n - 1, acc.wrapping_mul(31).wrapping_add(n as u64))
    }
}

/// Ordinary recursion over children in a loop: nothing for LLVM to turn into a loop.
#[inline(never)]
fn visit(t: &Tree, depth: u32, out: &mut Vec<u32>) {
    out.push(depth);
    if let Tree::Node(l, r) = t {
        for child in [l, r] {
            visit(child, depth + 1, out);
        }
    }
}

/// No recursion, two loops: its count must stay exact.
#[inline(never)]
fn loops(n: u64) -> u64 {
    let mut total = 0u64;
    let mut i = 0;
    while i < n {
        total = total.wrapping_add(black_box(i) * 3);
        i += 1;
    }
    for k in 0..n {
        if black_box(k) % 2 == 0 {
            total ^= k;
        }
    }
    total
}

/// Calls itself only in a loop-free way once (not a tail call): stays a real call.
#[inline(never)]
fn depth_of(n: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    let below = depth_of(black_box(n / 2));
    black_box(below) + 1
}

/// Both calls kept real calls by black_box (the fix the bound's reason names).
#[inline(never)]
fn fib_kept(n: u32) -> u64 {
    if n < 2 {
        n as u64
    } else {
        black_box(fib_kept(n - 1)) + black_box(fib_kept(n - 2))
    }
}

/// A tree with any number of children.
struct Node {
    children: Vec<Node>,
}

/// Calls itself from a closure (compiled into the closure, or where it is inlined).
#[inline(never)]
fn grow(depth: u32, width: usize) -> Node {
    let children = if depth == 0 { Vec::new() } else { (0..width).map(|_| grow(depth - 1, width)).collect() };
    Node { children }
}

/// Recursion over a Vec of children in a loop, the common walker: its calls stay calls.
#[inline(never)]
fn walk(node: &Node) -> u64 {
    let mut nodes = 1;
    for child in &node.children {
        nodes += walk(child);
    }
    nodes
}

// Two private functions with the same body: a release build keeps one of them.
#[inline(never)]
fn twin_a(x: u64) -> u64 {
    black_box(x).wrapping_mul(0x9E37_79B9) ^ 0x1234
}

#[inline(never)]
fn twin_b(x: u64) -> u64 {
    black_box(x).wrapping_mul(0x9E37_79B9) ^ 0x1234
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(10);
    let n = black_box(n);
    println!("fib({n}) = {}", fib(n as u32));
    let tree = build(3, n as i64);
    println!("sum(depth 3, seed {n}) = {}", tree.sum());
    println!("gcd({}, {n}) = {}", n * 89, gcd(n * 89, n * 55 + 1));
    println!("gcd_inlined({}, {n}) = {}", n * 34, gcd_inlined(n * 34, n * 21 + 1));
    println!("sum_to({n}) = {}", sum_to(n));
    println!("countdown({n}, 7) = {}", countdown(n as u32, 7));
    let mut depths = Vec::new();
    visit(&tree, 0, &mut depths);
    println!("visit(depth 3) = {:?}", depths);
    println!("loops({n}) = {}", loops(n));
    println!("depth_of({n}) = {}", depth_of(n));
    println!("fib_kept({n}) = {}", fib_kept(n as u32));
    println!("walk(depth 3, width 3) = {}", walk(&grow(3, 3)));
    for i in 0..n {
        println!("twin_a({i}) = {}", twin_a(i));
    }
    println!("twin_b({n}) = {}", twin_b(n));
}

//! stockroom binary: runs the pipeline and prints every asserted call as
//! `CALL name | arg | arg => ret` with `{:?}`.
use std::cell::RefCell;
use std::collections::{HashMap, HashSet, VecDeque};
use std::path::Path;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use stockroom::jobs::{fetch_price, fetch_stock, slow_audit};
use stockroom::pricing::{cheapest, max_key, quote, settle, Bulk, Flat, Pricing, Tiered};
use stockroom::*;

fn rules() -> Vec<Box<dyn Pricing>> {
    vec![
        Box::new(Flat { cents: 250 }),
        Box::new(Tiered { tiers: vec![(10, 200), (50, 150)], fallback: 260 }),
        Box::new(Bulk { base: 300, pct_off: 40, min_qty: 20 }),
    ]
}

fn orders() -> Vec<Order> {
    let mk = |id: u64, c: &str, lines: &[(&str, u32)]| Order {
        id,
        customer: c.to_string(),
        lines: lines.iter().map(|(s, q)| (s.to_string(), *q)).collect(),
        priority: Priority::Low,
    };
    vec![
        mk(1001, "acme", &[("sku-001", 3), ("sku-004", 2)]),
        mk(1002, "vip-bolt", &[("sku-002", 1)]),
        mk(1003, "corner", &[("sku-003", 12), ("sku-005", 4)]),
        mk(1004, "depot", &[("sku-006", 40), ("sku-007", 30)]),
    ]
}

/// Replica of `checksum` that prints the loop body's state at the start of each pass.
fn checksum_steps(data: &[u8]) {
    let mut acc: u32 = 7;
    let mut n: u32 = 0;
    for &b in data {
        println!("STEP n={} b={} acc={}", n, b, acc);
        acc = acc.rotate_left(5) ^ (b as u32);
        n += 1;
    }
}

fn run_sync(n_skus: u32, n_codes: u32) {
    let mut inv = Inventory::new("/var/lib/stockroom", n_skus, n_codes);
    let rules = rules();

    for (i, r) in rules.iter().enumerate() {
        for qty in [5u32, 25] {
            let t = quote(r.as_ref(), qty);
            println!("CALL quote | {:?} | {:?} => {:?}  # rule {}", r, qty, t, i);
        }
    }
    for qty in [5u32, 60] {
        let c = cheapest(&rules, qty);
        println!("CALL cheapest | {:?} => {:?}", qty, c);
    }
    let boxed: Box<dyn Pricing> = Box::new(Bulk { base: 120, pct_off: 10, min_qty: 2 });
    println!("ARG settle | {:?} | {:?}", boxed, 4u32);
    let s = settle(boxed, 4);
    println!("CALL settle => {:?}", s);

    for (sku, qty) in [("sku-003", 2u32), ("sku-001", 50), ("nope-9", 1), ("sku-010", 4)] {
        let r = inv.reserve(sku, qty);
        println!("CALL reserve | {:?} | {:?} => {:?}", sku, qty, r);
    }
    let low = inv.low_stock(4);
    println!("CALL low_stock | {:?} => {:?}", 4u32, low);

    println!("ARG total_units | {:?}", inv.stock);
    let t = total_units(&inv.stock);
    println!("CALL total_units => {:?}", t);
    let small: HashMap<String, u32> = [("red", 3u32), ("green", 5), ("blue", 9)]
        .iter()
        .map(|(k, v)| (k.to_string(), *v))
        .collect();
    println!("ARG sum_small | {:?}", small);
    println!("CALL sum_small => {:?}", sum_small(&small));

    for code in [100u32, 335, 7] {
        let r = catalog_lookup(&inv.catalog, code);
        println!("CALL catalog_lookup | {:?} => {:?}  # catalog len {}", code, r, inv.catalog.len());
    }
    println!("ARG catalog | {:?}", inv.catalog);

    // A ring that wraps: push 6, pop 4, push 6 more.
    let mut q: VecDeque<u64> = VecDeque::with_capacity(8);
    for v in 1..=6u64 {
        q.push_back(v * 11);
    }
    for _ in 0..4 {
        q.pop_front();
    }
    for v in 7..=12u64 {
        q.push_back(v * 11);
    }
    println!("ARG drain_backlog | {:?} | {:?}", q, 3usize);
    let d = drain_backlog(&mut q, 3);
    println!("CALL drain_backlog => {:?}", d);

    let names: HashSet<String> = orders().iter().map(|o| o.customer.clone()).collect();
    println!("ARG distinct_customers | {:?}", names);
    println!("CALL distinct_customers => {:?}", distinct_customers(&names));

    for id in [1001u64, 42] {
        let p = archive_path(&inv.root, id);
        println!("CALL archive_path | {:?} | {:?} => {:?}", inv.root, id, p);
    }

    let counter = Rc::new(RefCell::new(10u32));
    let _keep = Rc::clone(&counter);
    for by in [1u32, 5] {
        let before = *counter.borrow();
        let strong = Rc::strong_count(&counter);
        let r = bump_shared(&counter, by);
        println!("CALL bump_shared | {:?} | {:?} => {:?}  # strong {}", before, by, r, strong);
    }

    let ledger = Arc::new(Mutex::new(vec![500u64]));
    for cents in [250u64, 125] {
        let before = ledger.lock().unwrap().clone();
        let n = ledger_push(&ledger, cents);
        println!("CALL ledger_push | {:?} | {:?} => {:?}", before, cents, n);
    }

    let items: Vec<Item> = (1..=4u32)
        .map(|i| Item { sku: sku_name(i), qty: i, cents: 100 * i as u64 + 25 })
        .collect();
    let avg = average_cents(&items);
    println!("CALL average_cents | {:?} => {:?}", items, avg);
    for (done, total) in [(3u64, 4u64), (1, 8)] {
        println!("CALL fill_ratio | {:?} | {:?} => {:?}", done, total, fill_ratio(done, total));
    }

    let mut os = orders();
    for o in os.iter_mut() {
        o.priority = classify(o);
        println!("CALL classify | {:?} => {:?}", o.id, o.priority);
    }
    for (i, o) in os.iter().enumerate() {
        let r = &rules[i % rules.len()];
        let v = order_value(o, r.as_ref());
        println!("CALL order_value | {:?} | {:?} => {:?}", o.id, r, v);
    }
    println!("CALL tally => {:?}", tally(&os));

    let mk = max_key(&items, |i| i.cents * i.qty as u64);
    println!("CALL max_key::<Item> => {:?}", mk);
    let words = ["pallet", "crate", "box"];
    let mw = max_key(&words, |w| w.len() as u64);
    println!("CALL max_key::<&str> => {:?}", mw);

    let data = b"stockroom";
    checksum_steps(data);
    println!("CALL checksum | {:?} => {:?}", data.to_vec(), checksum(data));
}

fn run_async() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut handles = Vec::new();
        for (sku, delay) in [("sku-001", 20u64), ("sku-0022", 5), ("sku-3", 12)] {
            handles.push((sku, delay, tokio::spawn(fetch_stock(sku.to_string(), delay))));
        }
        for (sku, delay, h) in handles {
            let v = h.await.unwrap();
            println!("ASYNC fetch_stock | {:?} | {:?} => {:?}", sku, delay, v);
        }
        let (a, b) = tokio::join!(fetch_price(5), fetch_price(8));
        println!("ASYNC fetch_price | {:?} => {:?}", 5u32, a);
        println!("ASYNC fetch_price | {:?} => {:?}", 8u32, b);
        tokio::select! {
            v = slow_audit(77) => println!("ASYNC slow_audit | {:?} => {:?}", 77u64, v),
            _ = tokio::time::sleep(Duration::from_millis(30)) => {
                println!("ASYNC slow_audit | {:?} => cancelled", 77u64)
            }
        }
        let never = fetch_stock("never".to_string(), 1);
        drop(never);
        println!("ASYNC fetch_stock | {:?} | {:?} => dropped-unpolled", "never", 1u64);
    });
}

fn run_fleet(n: u32) {
    let exe = std::env::current_exe().unwrap();
    for i in 0..n {
        let st = std::process::Command::new(&exe).arg("worker").arg(i.to_string()).status().unwrap();
        println!("FLEET worker {} exited {:?}", i, st.code());
    }
}

fn run_worker(i: u32) {
    let mut inv = Inventory::new("/tmp/w", 12, 10);
    let sku = sku_name(i + 1);
    let r = inv.reserve(&sku, i + 1);
    println!("CALL reserve | {:?} | {:?} => {:?}", sku, i + 1, r);
    let p = archive_path(Path::new("/tmp/w"), i as u64);
    println!("CALL archive_path | {:?} | {:?} => {:?}", Path::new("/tmp/w"), i as u64, p);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().map(|s| s.as_str()).unwrap_or("sync");
    let num = |k: usize, d: u32| args.get(k).and_then(|s| s.parse().ok()).unwrap_or(d);
    match mode {
        "sync" => run_sync(num(1, 40), num(2, 120)),
        "async" => run_async(),
        "fleet" => run_fleet(num(1, 2)),
        "worker" => run_worker(num(1, 0)),
        other => {
            eprintln!("unknown mode {other}");
            std::process::exit(2);
        }
    }
}

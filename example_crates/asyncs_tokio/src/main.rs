//! Futures on tokio's multi-thread runtime. Each poll of `fetch` prints one line with its OS
//! thread id (`start` on the first poll, `resumed` on the others); outputs, cancellations
//! and panics are printed too: the tests compare the probes' futures with these lines.
use std::time::Duration;

extern "C" {
    fn gettid() -> i32;
}

fn tid() -> i32 {
    unsafe { gettid() }
}

#[inline(never)]
async fn fetch(id: u32, hops: u32, label: String) -> u64 {
    println!("fetch start id={} hops={} label={} tid={}", id, hops, label, tid());
    for _ in 0..hops {
        // Busy for a moment: the other worker, idle, steals the tasks queued behind.
        std::thread::sleep(Duration::from_millis(2));
        tokio::task::yield_now().await;
        println!("fetch resumed id={} tid={}", id, tid());
    }
    let out = id as u64 * 100 + hops as u64 + label.len() as u64;
    println!("fetch done id={} out={} tid={}", id, out, tid());
    out
}

/// Sleeps far longer than anyone waits for it: it is always cancelled.
#[inline(never)]
async fn slow(id: u32, label: String) -> u64 {
    println!("slow start id={} label={} tid={}", id, label, tid());
    tokio::time::sleep(Duration::from_secs(30)).await;
    println!("slow done id={}", id);
    id as u64
}

#[inline(never)]
async fn boom(code: u32, label: String) -> u32 {
    tokio::task::yield_now().await;
    println!("boom panics code={} label={} tid={}", code, label, tid());
    if code > 0 {
        panic!("boom {}", code);
    }
    code
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mode = std::env::args().nth(1).unwrap_or_else(|| "multi".to_string());
    println!("main tid={}", tid());
    match mode.as_str() {
        "multi" => {
            let handles: Vec<_> = (1..=6u32)
                .map(|id| tokio::spawn(fetch(id, 6, "mt".to_string())))
                .collect();
            for (i, h) in handles.into_iter().enumerate() {
                let v = h.await.unwrap();
                println!("spawned fetch {} -> {}", i + 1, v);
            }
        }
        "join" => {
            let (a, b) = tokio::join!(fetch(20, 1, "a".to_string()), fetch(21, 2, "bb".to_string()));
            println!("join -> {} {}", a, b);
        }
        "select" => {
            tokio::select! {
                v = fetch(30, 1, "s".to_string()) => println!("select: fetch won with {}", v),
                v = slow(31, "cancelled".to_string()) => println!("select: slow won with {}", v),
            }
            let h = tokio::spawn(slow(32, "aborted".to_string()));
            tokio::time::sleep(Duration::from_millis(50)).await;
            h.abort();
            let r = h.await;
            println!("abort -> cancelled={}", r.unwrap_err().is_cancelled());
        }
        "panic" => {
            let h = tokio::spawn(boom(7, "task".to_string()));
            let r = h.await;
            println!("boom task -> panic={}", r.unwrap_err().is_panic());
        }
        _ => panic!("unknown mode {}", mode),
    }
}

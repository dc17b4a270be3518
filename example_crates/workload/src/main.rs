//! Runs that misbehave on purpose: hang, crash, abort, many threads, many calls.
use std::env;
use std::thread;
use std::time::Duration;

#[inline(never)]
pub fn tick(n: u64) -> u64 {
    std::hint::black_box(n.wrapping_mul(2).wrapping_add(1))
}

fn main() {
    let args: Vec<String> = env::args().collect();
    let mode = args.get(1).map(String::as_str).unwrap_or("loop");
    let count: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(3);
    match mode {
        // tick `count` times, then print the sum of what tick returned
        "loop" => {
            let mut sum = 0u64;
            for i in 0..count {
                sum = sum.wrapping_add(tick(i));
            }
            println!("ticks {} sum {}", count, sum);
        }
        // tick forever, 100 times a second
        "hang" => {
            let mut i = 0;
            loop {
                tick(i);
                i += 1;
                if i == count {
                    println!("ticked {}", i);
                }
                thread::sleep(Duration::from_millis(10));
            }
        }
        // tick `count` times, then die of SIGSEGV
        "segv" => {
            for i in 0..count {
                tick(i);
            }
            println!("ticked {}", count);
            unsafe {
                std::ptr::write_volatile(std::ptr::null_mut::<u64>(), 1);
            }
        }
        // tick `count` times, then abort
        "abort" => {
            for i in 0..count {
                tick(i);
            }
            println!("ticked {}", count);
            std::process::abort();
        }
        // `count` threads, each ticking 1,000 times
        "threads" => {
            let handles: Vec<_> = (0..count)
                .map(|t| thread::spawn(move || (0..1000).map(|i| tick(t * 1000 + i)).count()))
                .collect();
            let total: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
            println!("threads {} ticks {}", count, total);
        }
        other => {
            eprintln!("unknown mode {}", other);
            std::process::exit(2);
        }
    }
}

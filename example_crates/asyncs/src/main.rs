//! Futures run by two std-only executors: a one-future `block_on` and a multi-thread
//! executor with a channel of tasks. Every line it prints is what the tests compare against:
//! each future's arguments, each poll's OS thread id, each output, each drop before
//! completion.
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;

extern "C" {
    fn gettid() -> i32;
}

fn tid() -> i32 {
    unsafe { gettid() }
}

/// Returns Pending once (waking itself at once), then Ready.
struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

fn yield_now() -> YieldNow {
    YieldNow { yielded: false }
}

/// The async fn under test: suspends `delay` times, then returns `id * 100 + delay` plus the
/// label's length.
#[inline(never)]
async fn fetch(id: u32, delay: u32, label: String) -> u64 {
    println!("fetch start id={} delay={} label={} tid={}", id, delay, label, tid());
    for _ in 0..delay {
        yield_now().await;
        println!("fetch resumed id={} tid={}", id, tid());
    }
    let out = id as u64 * 100 + delay as u64 + label.len() as u64;
    println!("fetch done id={} out={} tid={}", id, out, tid());
    out
}

/// An async block's enclosing fn: the future is the block.
#[inline(never)]
fn make_job(x: u64, name: &'static str) -> impl Future<Output = u64> {
    async move {
        println!("job start x={} name={} tid={}", x, name, tid());
        yield_now().await;
        let out = x * 3 + name.len() as u64;
        println!("job done x={} out={} tid={}", x, out, tid());
        out
    }
}

/// A future written by hand: Pending `n` times, then Ready(start * 2).
struct Countdown {
    start: u64,
    n: u32,
}

impl Future for Countdown {
    type Output = u64;
    #[inline(never)]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u64> {
        println!("countdown poll start={} n={} tid={}", self.start, self.n, tid());
        if self.n == 0 {
            return Poll::Ready(self.start * 2);
        }
        self.n -= 1;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[inline(never)]
async fn explode(code: u32) -> u32 {
    yield_now().await;
    println!("explode panics code={} tid={}", code, tid());
    if code > 0 {
        panic!("explode {}", code);
    }
    code
}

#[inline(never)]
async fn local_sum(a: u32, b: u32) -> u32 {
    yield_now().await;
    println!("local_sum polled again a={} b={} tid={}", a, b, tid());
    a + b
}

/// No `#[inline(never)]`: in a release build its constructor is inlined away and its poll
/// body survives only as copies inlined into its pollers.
async fn gone(id: u32, rounds: u32) -> u64 {
    let mut out = id as u64 * 10;
    for _ in 0..rounds {
        yield_now().await;
        out += 1;
    }
    println!("gone done id={} rounds={} out={} tid={}", id, rounds, out, tid());
    out
}

#[inline(never)]
fn gone_part() {
    let v = block_on(gone(4, 2));
    println!("block_on gone -> {}", v);
}

// ---- block_on: one future on the calling thread ----

struct ThreadWaker {
    woken: Mutex<bool>,
    cv: Condvar,
}

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        *self.woken.lock().unwrap() = true;
        self.cv.notify_one();
    }
}

fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = Box::pin(fut);
    let tw = Arc::new(ThreadWaker { woken: Mutex::new(false), cv: Condvar::new() });
    let waker = Waker::from(tw.clone());
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        let mut woken = tw.woken.lock().unwrap();
        while !*woken {
            woken = tw.cv.wait(woken).unwrap();
        }
        *woken = false;
    }
}

// ---- a multi-thread executor: a channel of tasks, N workers ----

type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

struct Task {
    future: Mutex<Option<BoxFuture>>,
    queue: Sender<Arc<Task>>,
}

impl Wake for Task {
    fn wake(self: Arc<Self>) {
        let q = self.queue.clone();
        let _ = q.send(self);
    }
}

fn run_pool(workers: usize, jobs: Vec<BoxFuture>) {
    let (tx, rx) = channel::<Arc<Task>>();
    let rx = Arc::new(Mutex::new(rx));
    let pending = Arc::new(Mutex::new(jobs.len()));
    let done = Arc::new(AtomicBool::new(jobs.is_empty()));
    for job in jobs {
        let task = Arc::new(Task { future: Mutex::new(Some(job)), queue: tx.clone() });
        tx.send(task).unwrap();
    }
    drop(tx);
    let mut handles = Vec::new();
    for _ in 0..workers {
        let rx: Arc<Mutex<Receiver<Arc<Task>>>> = rx.clone();
        let pending = pending.clone();
        let done = done.clone();
        handles.push(thread::spawn(move || loop {
            if done.load(Ordering::SeqCst) {
                return;
            }
            let task = {
                let guard = rx.lock().unwrap();
                match guard.recv_timeout(std::time::Duration::from_millis(20)) {
                    Ok(t) => t,
                    Err(_) => continue,
                }
            };
            let mut slot = task.future.lock().unwrap();
            if let Some(mut fut) = slot.take() {
                let waker = Waker::from(task.clone());
                let mut cx = Context::from_waker(&waker);
                // Let the other worker take the next wake-up: futures move between threads.
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    fut.as_mut().poll(&mut cx)
                }));
                match result {
                    Ok(Poll::Pending) => {
                        *slot = Some(fut);
                        drop(slot);
                        thread::sleep(std::time::Duration::from_millis(2));
                        continue;
                    }
                    Ok(Poll::Ready(())) => {}
                    Err(_) => println!("task panicked tid={}", tid()),
                }
                let mut left = pending.lock().unwrap();
                *left -= 1;
                if *left == 0 {
                    done.store(true, Ordering::SeqCst);
                }
            }
        }));
    }
    for h in handles {
        h.join().unwrap();
    }
}

/// Polls `a` and `b` in turn until one completes, then drops the other: a select.
struct Select<A> {
    a: Pin<Box<A>>,
    // A trait object: dropping it calls the future's drop glue out of line, through the
    // vtable, where the probes can read the address dropped.
    b: Option<Pin<Box<dyn Future<Output = u64>>>>,
}

impl<A: Future<Output = u64>> Future for Select<A> {
    type Output = u64;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u64> {
        if let Poll::Ready(v) = self.a.as_mut().poll(cx) {
            println!("select: first won with {}, dropping the second", v);
            self.b = None;
            return Poll::Ready(v);
        }
        if let Some(b) = self.b.as_mut() {
            if let Poll::Ready(v) = b.as_mut().poll(cx) {
                println!("select: second won with {}", v);
                return Poll::Ready(v);
            }
        }
        Poll::Pending
    }
}

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_else(|| "all".to_string());
    println!("main tid={}", tid());
    if mode == "all" || mode == "block_on" {
        let v = block_on(fetch(1, 2, "ab".to_string()));
        println!("block_on fetch -> {}", v);
        // Boxed as a trait object: the block's poll runs out of line, through the vtable.
        let job: Pin<Box<dyn Future<Output = u64>>> = Box::pin(make_job(7, "seven"));
        let v = block_on(job);
        println!("block_on job -> {}", v);
        let v = block_on(Countdown { start: 21, n: 2 });
        println!("block_on countdown -> {}", v);
    }
    if mode == "all" || mode == "select" {
        // Created first, dropped without a single poll at the end.
        let never: Pin<Box<dyn Future<Output = u64>>> = Box::pin(fetch(5, 0, "zzz".to_string()));
        // fetch(3, 1, ..) wins; fetch(4, 5, ..) is polled once, then dropped unfinished.
        let v = block_on(Select {
            a: Box::pin(fetch(3, 1, "x".to_string())),
            b: Some(Box::pin(fetch(4, 5, "yy".to_string()))),
        });
        println!("select -> {}", v);
        drop(std::hint::black_box(never));
        println!("dropped fetch 5 unpolled");
    }
    if mode == "all" || mode == "pool" {
        let mut jobs: Vec<BoxFuture> = Vec::new();
        for id in 10..14u32 {
            jobs.push(Box::pin(async move {
                let v = fetch(id, 3, "pool".to_string()).await;
                println!("pool fetch {} -> {}", id, v);
            }));
        }
        jobs.push(Box::pin(async {
            // Boxed as a trait object: its poll runs out of line, through the vtable.
            let boxed: Pin<Box<dyn Future<Output = u32> + Send>> = Box::pin(explode(9));
            let v = boxed.await;
            println!("explode -> {}", v);
        }));
        run_pool(2, jobs);
    }
    if mode == "inlined" {
        // Polled only here, by a block_on inlined into main: its poll is inlined into
        // block_on's loop.
        let v = block_on(local_sum(2, 3));
        println!("block_on local_sum -> {}", v);
    }
    if mode == "gone" {
        gone_part();
    }
    if mode == "all" || mode == "leak" {
        // Polled once, then forgotten: never completed by program end, never dropped.
        let mut fut = Box::pin(fetch(6, 4, "leak".to_string()));
        let waker = Waker::from(Arc::new(ThreadWaker { woken: Mutex::new(false), cv: Condvar::new() }));
        let mut cx = Context::from_waker(&waker);
        let _ = fut.as_mut().poll(&mut cx);
        std::mem::forget(fut);
        println!("leaked fetch 6");
    }
}

//! jobsched: a tiny job scheduler. Every traced function prints
//! `CALL <path> args=<{:?} of its args> ret=<{:?} of its return value>`.
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt::Debug;
use std::future::Future;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread, ThreadId};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub enum Priority {
    Low,
    Normal,
    High(u8),
}

#[derive(Debug, Clone)]
pub struct Job {
    pub id: u32,
    pub name: String,
    pub priority: Priority,
    pub deps: Vec<u32>,
}

pub trait Task: Debug {
    fn label(&self) -> String;
    fn cost(&self, factor: u32) -> u64;
}

#[derive(Debug)]
pub struct Compile {
    pub unit: String,
    pub lines: u32,
}

#[derive(Debug)]
pub struct CopyFile {
    pub from: PathBuf,
    pub bytes: u64,
}

#[derive(Debug)]
pub struct Sleep {
    pub ms: u64,
}

impl Task for Compile {
    #[inline(never)]
    fn label(&self) -> String {
        format!("compile {}", self.unit)
    }
    #[inline(never)]
    fn cost(&self, factor: u32) -> u64 {
        let a = format!("{:?}", (self, factor));
        let r = self.lines as u64 * factor as u64;
        println!("CALL <jobsched::Compile as jobsched::Task>::cost args={} ret={:?}", a, r);
        r
    }
}

impl Task for CopyFile {
    #[inline(never)]
    fn label(&self) -> String {
        format!("copy {}", self.from.display())
    }
    #[inline(never)]
    fn cost(&self, factor: u32) -> u64 {
        let a = format!("{:?}", (self, factor));
        let r = self.bytes / 1024 + factor as u64;
        println!("CALL <jobsched::CopyFile as jobsched::Task>::cost args={} ret={:?}", a, r);
        r
    }
}

impl Task for Sleep {
    #[inline(never)]
    fn label(&self) -> String {
        format!("sleep {}ms", self.ms)
    }
    #[inline(never)]
    fn cost(&self, factor: u32) -> u64 {
        let a = format!("{:?}", (self, factor));
        let r = self.ms + factor as u64;
        println!("CALL <jobsched::Sleep as jobsched::Task>::cost args={} ret={:?}", a, r);
        r
    }
}

#[inline(never)]
pub fn run_task(t: &dyn Task, factor: u32) -> u64 {
    let a = format!("{:?}", (t, factor));
    let r = t.cost(factor) + 1;
    println!("CALL jobsched::run_task args={} ret={:?}", a, r);
    r
}

#[inline(never)]
pub fn boxed_label(t: Box<dyn Task>) -> String {
    let a = format!("{:?}", (&t,));
    let r = t.label();
    println!("CALL jobsched::boxed_label args={} ret={:?}", a, r);
    r
}

#[inline(never)]
pub fn total_cost<T: Task>(items: &[T], factor: u32) -> u64 {
    let a = format!("{:?}", (items, factor));
    let r = items.iter().map(|t| t.cost(factor)).sum();
    println!("CALL jobsched::total_cost args={} ret={:?}", a, r);
    r
}

#[inline(never)]
pub fn make_scaler(k: u32) -> impl Fn(u32) -> u32 {
    move |x: u32| {
        let r = x * k + 1;
        println!("CALL jobsched::make_scaler::{{closure#0}} args={:?} ret={:?}", (x,), r);
        r
    }
}

#[inline(never)]
pub fn apply_twice<F: Fn(u32) -> u32>(f: F, x: u32) -> u32 {
    let r = f(f(x));
    println!("CALL jobsched::apply_twice args={:?} ret={:?}", (x,), r);
    r
}

#[inline(never)]
pub fn make_job(id: u32, name: &str, priority: Priority, deps: Vec<u32>) -> Job {
    let a = format!("{:?}", (id, name, &priority, &deps));
    let r = Job { id, name: name.to_string(), priority, deps };
    println!("CALL jobsched::make_job args={} ret={:?}", a, r);
    r
}

#[inline(never)]
pub fn parse_priority(s: &str) -> Result<Priority, String> {
    let r = if s == "low" {
        Ok(Priority::Low)
    } else if s == "normal" {
        Ok(Priority::Normal)
    } else if let Some(n) = s.strip_prefix("high:") {
        n.parse::<u8>().map(Priority::High).map_err(|e| e.to_string())
    } else {
        Err(format!("unknown priority: {}", s))
    };
    println!("CALL jobsched::parse_priority args={:?} ret={:?}", (s,), r);
    r
}

#[inline(never)]
pub fn find_job(jobs: &[Job], id: u32) -> Option<Job> {
    let a = format!("{:?}", (jobs, id));
    let r = jobs.iter().find(|j| j.id == id).cloned();
    println!("CALL jobsched::find_job args={} ret={:?}", a, r);
    r
}

#[inline(never)]
pub fn count_words(text: &str) -> HashMap<String, u32> {
    let mut m = HashMap::new();
    for w in text.split_whitespace() {
        *m.entry(w.to_string()).or_insert(0) += 1;
    }
    println!("CALL jobsched::count_words args={:?} ret={:?}", (text,), m);
    m
}

#[inline(never)]
pub fn tag_count(tags: &HashSet<String>, extra: &str) -> usize {
    let a = format!("{:?}", (tags, extra));
    let r = tags.len() + if tags.contains(extra) { 0 } else { 1 };
    println!("CALL jobsched::tag_count args={} ret={:?}", a, r);
    r
}

#[inline(never)]
pub fn by_id(jobs: &[Job]) -> BTreeMap<u32, String> {
    let r: BTreeMap<u32, String> = jobs.iter().map(|j| (j.id, j.name.clone())).collect();
    println!("CALL jobsched::by_id args={:?} ret={:?}", (jobs,), r);
    r
}

#[inline(never)]
pub fn ready_ids(done: &BTreeSet<u32>, limit: u32) -> Vec<u32> {
    let a = format!("{:?}", (done, limit));
    let r: Vec<u32> = done.iter().copied().filter(|&i| i < limit).collect();
    println!("CALL jobsched::ready_ids args={} ret={:?}", a, r);
    r
}

#[inline(never)]
pub fn next_in_queue(queue: &mut VecDeque<u32>) -> Option<u32> {
    let a = format!("{:?}", (&*queue,));
    let r = queue.pop_front();
    println!("CALL jobsched::next_in_queue args={} ret={:?}", a, r);
    r
}

#[inline(never)]
pub fn output_path(root: &Path, job: &str) -> PathBuf {
    let r = root.join(job).with_extension("out");
    println!("CALL jobsched::output_path args={:?} ret={:?}", (root, job), r);
    r
}

#[inline(never)]
pub fn shared_len(s: Rc<String>) -> usize {
    let r = s.len();
    println!("CALL jobsched::shared_len args={:?} ret={:?} strong={}", (&s,), r, Rc::strong_count(&s));
    r
}

#[inline(never)]
pub fn bump(c: &RefCell<u32>, by: u32) -> u32 {
    let a = format!("({:?}, {:?})", *c.borrow(), by);
    *c.borrow_mut() += by;
    let r = *c.borrow();
    println!("CALL jobsched::bump args={} ret={:?}", a, r);
    r
}

#[inline(never)]
pub fn lock_add(m: &Mutex<u64>, by: u64) -> u64 {
    let mut g = m.lock().unwrap();
    let a = format!("({:?}, {:?})", *g, by);
    *g += by;
    let r = *g;
    drop(g);
    println!("CALL jobsched::lock_add args={} ret={:?}", a, r);
    r
}

#[inline(never)]
pub fn arc_sum(v: Arc<Vec<u32>>) -> u32 {
    let r = v.iter().sum();
    println!("CALL jobsched::arc_sum args={:?} ret={:?}", (&*v,), r);
    r
}

#[inline(never)]
pub fn timeout_for(p: &Priority, base: Duration) -> Duration {
    let r = match p {
        Priority::Low => base * 4,
        Priority::Normal => base * 2,
        Priority::High(n) => base / (*n as u32 + 1),
    };
    println!("CALL jobsched::timeout_for args={:?} ret={:?}", (p, base), r);
    r
}

#[inline(never)]
pub fn retries(n: NonZeroU32, bonus: u32) -> NonZeroU32 {
    let r = n.saturating_add(bonus);
    println!("CALL jobsched::retries args={:?} ret={:?}", (n, bonus), r);
    r
}

// ---------------------------------------------------------------- async

static YIELD_POLLS: AtomicUsize = AtomicUsize::new(0);
static YIELD_FUTURES: AtomicUsize = AtomicUsize::new(0);

pub struct YieldOnce {
    done: bool,
}

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        YIELD_POLLS.fetch_add(1, Ordering::SeqCst);
        if !self.done {
            YIELD_FUTURES.fetch_add(1, Ordering::SeqCst);
        }
        if self.done {
            Poll::Ready(())
        } else {
            self.done = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

pub async fn fetch_input(id: u32, rounds: u32) -> u64 {
    let mut acc = id as u64 * 100;
    for _ in 0..rounds {
        YieldOnce { done: false }.await;
        acc += 1;
    }
    acc
}

pub async fn crunch(id: u32, rounds: u32) -> u64 {
    let mut acc = id as u64;
    for i in 0..rounds {
        YieldOnce { done: false }.await;
        acc = acc * 3 + i as u64;
    }
    acc
}

pub async fn pipeline(ids: Vec<u32>) -> u64 {
    let mut total = 0;
    for id in ids {
        total += Counted::new(fetch_input(id, 2), format!("fetch_input args={:?}", (id, 2u32))).await;
    }
    total
}

/// Wraps a future, counts its polls and the threads that polled it, prints when ready.
pub struct Counted<F: Future> {
    inner: Pin<Box<F>>,
    polls: u32,
    threads: Vec<ThreadId>,
    label: String,
}

impl<F: Future> Counted<F> {
    fn new(f: F, label: String) -> Self {
        Counted { inner: Box::pin(f), polls: 0, threads: Vec::new(), label }
    }
}

impl<F: Future> Future for Counted<F>
where
    F::Output: Debug,
{
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.polls += 1;
        let me = thread::current().id();
        if !self.threads.contains(&me) {
            self.threads.push(me);
        }
        match self.inner.as_mut().poll(cx) {
            Poll::Ready(v) => {
                println!(
                    "ASYNC {} polls={} threads={} ret={:?}",
                    self.label,
                    self.polls,
                    self.threads.len(),
                    v
                );
                Poll::Ready(v)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

struct ThreadWaker(Thread);
impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

#[inline(never)]
pub fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let waker = Waker::from(Arc::new(ThreadWaker(thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        match fut.as_mut().poll(&mut cx) {
            Poll::Ready(v) => return v,
            Poll::Pending => thread::park(),
        }
    }
}

type BoxFut = Pin<Box<dyn Future<Output = ()> + Send>>;

struct MtTask {
    fut: Mutex<Option<BoxFut>>,
    workers: Vec<Sender<Arc<MtTask>>>,
    next: AtomicUsize,
}

impl Wake for MtTask {
    // round-robin: each wake sends the task to the next worker, so it moves between threads
    fn wake(self: Arc<Self>) {
        let i = self.next.fetch_add(1, Ordering::SeqCst) % self.workers.len();
        let _ = self.workers[i].send(self.clone());
    }
}

static DONE: AtomicBool = AtomicBool::new(false);

pub fn run_multi_thread(futs: Vec<BoxFut>) {
    let mut senders = Vec::new();
    let mut handles = Vec::new();
    for _ in 0..2 {
        let (tx, rx) = channel::<Arc<MtTask>>();
        senders.push(tx);
        handles.push(thread::spawn(move || loop {
            match rx.recv_timeout(Duration::from_millis(20)) {
                Ok(task) => {
                    let waker = Waker::from(task.clone());
                    let mut cx = Context::from_waker(&waker);
                    let mut slot = task.fut.lock().unwrap();
                    if let Some(mut f) = slot.take() {
                        if f.as_mut().poll(&mut cx).is_pending() {
                            *slot = Some(f);
                        }
                    }
                }
                Err(_) => {
                    if DONE.load(Ordering::SeqCst) {
                        break;
                    }
                }
            }
        }));
    }
    let (done_tx, done_rx) = channel::<()>();
    let n = futs.len();
    for f in futs {
        let done_tx = done_tx.clone();
        let task = Arc::new(MtTask {
            fut: Mutex::new(Some(Box::pin(async move {
                f.await;
                let _ = done_tx.send(());
            }))),
            workers: senders.clone(),
            next: AtomicUsize::new(0),
        });
        task.wake();
    }
    for _ in 0..n {
        done_rx.recv().unwrap();
    }
    DONE.store(true, Ordering::SeqCst);
    drop(senders);
    for h in handles {
        h.join().unwrap();
    }
}

struct NoopWake;
impl Wake for NoopWake {
    fn wake(self: Arc<Self>) {}
}

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_else(|| "all".to_string());
    let factor: u32 = std::env::args().nth(2).and_then(|s| s.parse().ok()).unwrap_or(3);
    if mode == "all" || mode == "sync" {
        sync_part(factor);
    }
    if mode == "edge" {
        edge_part(factor);
    }
    if mode == "extra" {
        extra_part(factor);
    }
    if mode == "used" {
        used_part(factor);
    }
    if mode == "all" || mode == "async" {
        async_part(factor);
    }
}

fn sync_part(factor: u32) {
    // trait objects
    let tasks: Vec<Box<dyn Task>> = vec![
        Box::new(Compile { unit: "parser.rs".into(), lines: 120 }),
        Box::new(CopyFile { from: PathBuf::from("/srv/data/in.bin"), bytes: 8192 }),
        Box::new(Sleep { ms: 250 }),
    ];
    let mut sum = 0;
    for t in &tasks {
        sum += run_task(t.as_ref(), factor);
    }
    println!("SUM run_task {}", sum);
    for t in tasks {
        boxed_label(t);
    }
    // generics
    let units = [Compile { unit: "a.rs".into(), lines: 10 }, Compile { unit: "b.rs".into(), lines: 32 }];
    total_cost(&units, factor);
    let sleeps = [Sleep { ms: 5 }, Sleep { ms: 7 }, Sleep { ms: 11 }];
    total_cost(&sleeps, factor + 1);
    // closures
    let s = make_scaler(factor);
    apply_twice(&s, 4);
    apply_twice(make_scaler(2), 10);
    // enums, structs, Option, Result
    let mut jobs = Vec::new();
    for (i, (name, pr)) in [("fetch", "low"), ("build", "high:3"), ("test", "normal"), ("ship", "urgent")]
        .iter()
        .enumerate()
    {
        match parse_priority(pr) {
            Ok(p) => {
                let deps: Vec<u32> = (1..=i as u32).collect();
                jobs.push(make_job(i as u32 + 1, name, p, deps));
            }
            Err(e) => println!("skip {}: {}", name, e),
        }
    }
    find_job(&jobs, 2);
    find_job(&jobs, 9);
    by_id(&jobs);
    // collections
    count_words("build test build ship test build");
    let tags: HashSet<String> = ["fast", "ci", "nightly"].iter().map(|s| s.to_string()).collect();
    tag_count(&tags, "ci");
    tag_count(&tags, "gpu");
    let done: BTreeSet<u32> = [7, 3, 11, 1, 5].into_iter().collect();
    ready_ids(&done, 6);
    let mut q: VecDeque<u32> = VecDeque::with_capacity(4);
    q.extend([1, 2, 3, 4]);
    q.pop_front();
    q.pop_front();
    q.push_back(5);
    q.push_back(6); // wraps around the ring
    while next_in_queue(&mut q).is_some() {}
    output_path(Path::new("/var/jobs"), "build");
    // shared ownership and interior mutability
    let name = Rc::new(String::from("nightly-build"));
    let _keep = name.clone();
    shared_len(name.clone());
    let counter = RefCell::new(10);
    bump(&counter, 5);
    bump(&counter, factor);
    let total = Mutex::new(100u64);
    lock_add(&total, 20);
    lock_add(&total, factor as u64);
    arc_sum(Arc::new(vec![4, 8, 15, 16, 23, 42]));
    // Duration, NonZeroU32
    for p in &[Priority::Low, Priority::High(4)] {
        timeout_for(p, Duration::from_millis(1500));
    }
    retries(NonZeroU32::new(3).unwrap(), factor);
}

/// The same functions, but every argument and return value goes through black_box, as a
/// caller that really uses the values would (release builds then keep them).
fn used_part(factor: u32) {
    use std::hint::black_box as bb;
    let units = [Compile { unit: "c.rs".into(), lines: 7 }, Compile { unit: "d.rs".into(), lines: 9 }];
    bb(total_cost(bb(&units[..]), bb(factor)));
    bb(apply_twice(bb(make_scaler(factor)), bb(4)));
    let j = bb(make_job(bb(9), bb("deploy"), bb(Priority::High(1)), bb(vec![1, 2, 3])));
    bb(find_job(bb(std::slice::from_ref(&j)), bb(9)));
    bb(by_id(bb(std::slice::from_ref(&j))));
    bb(count_words(bb("a b a c")));
    bb(output_path(bb(Path::new("/opt/out")), bb("deploy")));
    let mut q: VecDeque<u32> = [7, 8].into_iter().collect();
    let mut got = 0;
    while let Some(x) = bb(next_in_queue(bb(&mut q))) {
        got += x;
    }
    bb(got);
    bb(arc_sum(bb(Arc::new(vec![1, 2, 3]))));
    bb(timeout_for(bb(&Priority::Normal), bb(Duration::from_millis(750))));
    bb(retries(bb(NonZeroU32::new(2).unwrap()), bb(factor)));
    let c = RefCell::new(1);
    bb(bump(bb(&c), bb(factor)));
    let m = Mutex::new(40u64);
    bb(lock_add(bb(&m), bb(factor as u64)));
    let name = Rc::new(String::from("used"));
    bb(shared_len(bb(name.clone())));
}

fn async_part(factor: u32) {
    // awaited to completion on this thread, suspended `rounds` times each
    let a = block_on(Counted::new(fetch_input(1, factor), format!("fetch_input args={:?}", (1u32, factor))));
    let b = block_on(Counted::new(fetch_input(2, 0), format!("fetch_input args={:?}", (2u32, 0u32))));
    println!("ASYNC-RESULT {} {}", a, b);
    // a future awaiting another one twice
    let t = block_on(Counted::new(pipeline(vec![3, 4]), format!("pipeline args={:?}", (vec![3u32, 4],))));
    println!("ASYNC-RESULT pipeline {}", t);
    // cancelled: polled once (suspended), then dropped
    {
        let waker = Waker::from(Arc::new(NoopWake));
        let mut cx = Context::from_waker(&waker);
        let mut f = Box::pin(fetch_input(7, 3));
        let p = f.as_mut().poll(&mut cx);
        println!("ASYNC-DROP fetch_input args={:?} polls=1 pending={}", (7u32, 3u32), p.is_pending());
        drop(f);
    }
    // dropped without being polled
    {
        let f = fetch_input(8, 1);
        drop(f);
        println!("ASYNC-DROP fetch_input args={:?} polls=0", (8u32, 1u32));
    }
    // moving between threads on a two-worker executor
    let futs: Vec<BoxFut> = vec![Box::pin(async move {
        Counted::new(crunch(5, factor + 1), format!("crunch args={:?}", (5u32, factor + 1))).await;
    })];
    run_multi_thread(futs);
    println!(
        "COUNT YieldOnce futures={} polls={}",
        YIELD_FUTURES.load(Ordering::SeqCst),
        YIELD_POLLS.load(Ordering::SeqCst)
    );
}

// ---------------------------------------------------------------- extra: inlining, recursion

/// small enough for a release build to inline into its caller
pub fn weight(p: &Priority) -> u32 {
    match p {
        Priority::Low => 1,
        Priority::Normal => 2,
        Priority::High(n) => 10 + *n as u32,
    }
}

#[inline(never)]
pub fn plan_weights(jobs: &[Job]) -> u32 {
    let mut total = 0;
    for j in jobs {
        let w = weight(&j.priority);
        println!("CALL jobsched::weight args={:?} ret={:?}", (&j.priority,), w);
        total += w;
    }
    println!("CALL jobsched::plan_weights args={:?} ret={:?}", (jobs,), total);
    total
}

static CHAIN_CALLS: AtomicUsize = AtomicUsize::new(0);

/// length of a dependency chain, recursively
#[inline(never)]
pub fn chain_len(deps: &HashMap<u32, u32>, id: u32) -> u32 {
    CHAIN_CALLS.fetch_add(1, Ordering::SeqCst);
    match deps.get(&id) {
        None => 0,
        Some(&next) => 1 + chain_len(deps, next),
    }
}

fn extra_part(factor: u32) {
    let prios = [Priority::Low, Priority::High(2), Priority::Normal, Priority::High(7), Priority::Low];
    let jobs: Vec<Job> = (0..factor as usize)
        .map(|i| Job { id: i as u32, name: format!("j{}", i), priority: prios[i % prios.len()].clone(), deps: vec![] })
        .collect();
    let t = plan_weights(&jobs);
    println!("RESULT plan_weights {}", t);
    let deps: HashMap<u32, u32> = (1..=factor * 2).map(|i| (i, i - 1)).collect();
    let n = chain_len(&deps, factor * 2);
    println!("CALL jobsched::chain_len args={:?} ret={:?}", (factor * 2,), n);
    println!("COUNT chain_len calls={}", CHAIN_CALLS.load(Ordering::SeqCst));
}

// ---------------------------------------------------------------- edge: panics, caps, nesting

#[inline(never)]
pub fn split_work(total: u32, workers: u32) -> u32 {
    if workers == 0 {
        panic!("no workers for {} units", total);
    }
    let r = total / workers;
    println!("CALL jobsched::split_work args={:?} ret={:?}", (total, workers), r);
    r
}

#[inline(never)]
pub fn retry_delay(last: Option<Option<u32>>) -> Option<Option<u32>> {
    let r = match last {
        None => Some(None),
        Some(None) => Some(Some(1)),
        Some(Some(n)) => if n > 8 { None } else { Some(Some(n * 2)) },
    };
    println!("CALL jobsched::retry_delay args={:?} ret={:?}", (last,), r);
    r
}

#[inline(never)]
pub fn long_log(lines: Vec<String>) -> usize {
    let r = lines.iter().map(|l| l.len()).sum();
    println!("CALL jobsched::long_log args={:?} ret={:?}", (&lines,), r);
    r
}

fn edge_part(factor: u32) {
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut ok = 0;
    for w in [2, 0, factor] {
        match std::panic::catch_unwind(|| split_work(100, w)) {
            Ok(v) => ok += std::hint::black_box(v),
            Err(_) => println!("PANIC jobsched::split_work args={:?}", (100u32, w)),
        }
    }
    std::panic::set_hook(prev);
    println!("RESULT split_work {}", ok);
    let mut d = None;
    for _ in 0..factor + 2 {
        d = std::hint::black_box(retry_delay(d));
    }
    let arc = Arc::new((1..=factor * 7).collect::<Vec<u32>>());
    std::hint::black_box(arc_sum(arc));
    let lines: Vec<String> = (0..factor).map(|i| format!("line {} {}", i, "x".repeat(60 * i as usize))).collect();
    std::hint::black_box(long_log(lines));
}

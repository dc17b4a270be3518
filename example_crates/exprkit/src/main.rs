use exprkit::*;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

// every line starting with "@@" is: name | {:?} of args | {:?} of return
macro_rules! show {
    ($name:expr, $args:expr, $ret:expr) => {
        println!("@@ {} | {:?} | {:?}", $name, $args, $ret)
    };
}

async fn score(id: u32, word: String) -> u64 {
    tokio::task::yield_now().await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let s = word.bytes().map(|b| b as u64).sum::<u64>() * id as u64;
    s
}

async fn slow_total(label: &'static str, ms: u64) -> u64 {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    ms * 2 + label.len() as u64
}

fn run_async(total: Arc<Mutex<u64>>) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let mut handles = Vec::new();
        for (i, w) in ["alpha", "beta", "gamma"].iter().enumerate() {
            let total = total.clone();
            let id = i as u32 + 1;
            let word = w.to_string();
            handles.push(tokio::spawn(async move {
                let s = score(id, word.clone()).await;
                show!("exprkit::score", (id, &word), s);
                record_total(&total, s)
            }));
        }
        for h in handles {
            h.await.unwrap();
        }
        let (a, b) = tokio::join!(score(7, "join".to_string()), score(8, "ed".to_string()));
        show!("exprkit::score", (7, "join"), a);
        show!("exprkit::score", (8, "ed"), b);
        tokio::select! {
            v = slow_total("fast", 10) => show!("exprkit::slow_total", ("fast", 10), v),
            v = slow_total("slow", 3000) => show!("exprkit::slow_total", ("slow", 3000), v),
        }
        println!("@@cancelled slow_total slow 3000");
    });
}

fn count_nodes(e: &Expr) -> usize {
    match e {
        Expr::Num(_) | Expr::Var(_) => 1,
        Expr::Neg(i) => 1 + count_nodes(i),
        Expr::Bin { lhs, rhs, .. } => 1 + count_nodes(lhs) + count_nodes(rhs),
        Expr::Call(_, a) => 1 + a.iter().map(count_nodes).sum::<usize>(),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().map(String::as_str).unwrap_or("all");
    if mode == "child" {
        let n: u32 = args[1].parse().unwrap();
        let f = fib(n);
        show!("exprkit::fib", (n,), f);
        return;
    }

    // ------------------------------------------------ expressions
    let exprs = ["1 + 2 * x", "hypot(3, y) - 2 ^ 2", "clamp(-x * 4) + poly(2)", "(a + b) / zeta"];
    let vars: HashMap<String, f64> = (0..40)
        .map(|i| (format!("v{i}"), i as f64 * 0.5))
        .chain([("x".to_string(), 2.5), ("y".to_string(), 4.0), ("a".to_string(), 1.0), ("b".to_string(), 2.0)])
        .collect();
    let env = Env { vars, funcs: registry(), seen: RefCell::new(HashSet::new()), history: Rc::new(RefCell::new(Vec::new())) };
    for src in exprs {
        let toks = tokenize(src);
        show!("exprkit::tokenize", (src,), toks);
        let e = parse(src).unwrap();
        println!("@@nodes {}", count_nodes(&e));
        let d = depth(&e);
        show!("exprkit::depth", (&e,), d);
        let mut pre: Vec<String> = env.seen.borrow().iter().cloned().collect();
        pre.sort();
        println!("@@pre {:?} {:?}", pre, env.history.borrow());
        let v = eval(&e, &env);
        show!("exprkit::eval", (src,), v);
    }
    println!("@@history {:?}", env.history.borrow());
    let mut seen: Vec<_> = env.seen.borrow().iter().cloned().collect();
    seen.sort();
    println!("@@seen {:?}", seen);

    // trait objects: &dyn and Rc<dyn>
    for name in ["hypot", "clamp", "poly"] {
        let f: Rc<dyn Function> = env.funcs[name].clone();
        let args: Vec<f64> = if f.arity() == 2 { vec![6.0, 8.0] } else { vec![12.5] };
        let r = call_fn(f.as_ref(), &args);
        show!("exprkit::call_fn", (&f, &args), r);
    }
    let bad = call_fn(&Hypot, &[1.0]);
    show!("exprkit::call_fn", (Hypot, [1.0]), bad);

    // the lexer state machine
    for (st, pos, c) in [(LexState::Start, 0usize, '4'), (LexState::InNumber { start: 0, dots: 0 }, 1, '.'), (LexState::InIdent(3), 5, 'q'), (LexState::InIdent(3), 6, ' ')] {
        let n = step(st, pos, c);
        show!("exprkit::step", (st, pos, c), n);
    }

    // ------------------------------------------------ statistics
    let data = [3.5, -1.25, 8.0, 2.0, 7.75, 0.5];
    let mm = min_max(&data);
    show!("exprkit::min_max", (&data,), mm);
    let s = summarize("sample", &data);
    show!("exprkit::summarize", ("sample", &data), s);
    let ints: Vec<i64> = vec![17, -4, 99, 23, 5, 42, -11, 64];
    let sp = span_of(&ints);
    show!("exprkit::span_of", (&ints,), sp);

    let l1 = largest(&[3u32, 9, 4]);
    show!("exprkit::largest::<u32>", ([3u32, 9, 4],), l1);
    let l2 = largest(&[-7i64, -2, -30]);
    show!("exprkit::largest::<i64>", ([-7i64, -2, -30],), l2);
    let l3 = largest(&['q', 'z', 'a']);
    show!("exprkit::largest::<char>", (['q', 'z', 'a'],), l3);
    let l4: Option<u32> = largest(&[]);
    show!("exprkit::largest::<u32>", ([] as [u32; 0],), l4);

    let k = 3;
    let r1 = apply_n(|x| x * 2 + k, 1, 4);
    show!("exprkit::apply_n", (1, 4), r1);
    let r2 = apply_n(|x| x - 1, 10, 3);
    show!("exprkit::apply_n", (10, 3), r2);
    let r3 = map_reduce(&ints, |x| x * x, |a, b| a + b, 0);
    show!("exprkit::map_reduce", (&ints, 0), r3);

    let reducers: Vec<Arc<dyn Reducer + Send + Sync>> = vec![Arc::new(Mean), Arc::new(Quantile(0.5)), Arc::new(Quantile(0.9))];
    for r in reducers {
        let out = run_reducer(r.clone(), &data);
        println!("@@strong {}", Arc::strong_count(&r) + 1);
        show!("exprkit::run_reducer", (&r, &data), out);
    }

    let f = fib(10);
    show!("exprkit::fib", (10,), f);

    // histogram over many values, >100 buckets
    let values: Vec<i64> = (0..260).map(|i| (i * 37 % 251) - 40).collect();
    let h = histogram(&values, 2);
    println!("@@histogram len={} first={:?} last={:?}", h.len(), h.iter().next(), h.iter().next_back());
    let b = busiest(&h);
    show!("exprkit::busiest", (&h,), b);
    let small = histogram(&[1, 2, 3, 5, 8, 13], 4);
    show!("exprkit::histogram", (vec![1, 2, 3, 5, 8, 13], 4), small);

    let found = lookup_all(&env.vars, &["x", "nope", "v39"]);
    show!("exprkit::lookup_all", (["x", "nope", "v39"],), found);
    println!("@@vars {:?}", env.vars);

    let p = PathBuf::from("/srv/scripts/quadratic.expr");
    let sn = script_name(&p);
    show!("exprkit::script_name", (&p,), sn);
    let tk = Token::Ident("theta".into());
    let ds = describe_shape(&tk);
    show!("exprkit::describe_shape", (&tk,), ds);
    let bt: BTreeMap<i64, u32> = BTreeMap::new();
    let _ = busiest(&bt);

    // ------------------------------------------------ async
    let total = Arc::new(Mutex::new(0u64));
    if mode == "all" || mode == "async" {
        run_async(total.clone());
        println!("@@total {}", *total.lock().unwrap());
    }

    // ------------------------------------------------ child process
    if mode == "all" || mode == "spawn" {
        let me = std::env::current_exe().unwrap();
        let out = std::process::Command::new(me).args(["child", "12"]).output().unwrap();
        print!("{}", String::from_utf8_lossy(&out.stdout));
    }
}

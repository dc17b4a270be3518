//! exprkit: a tiny expression tokenizer / parser / evaluator plus a statistics kit.
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt::Debug;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

// ---------------------------------------------------------------- tokens

#[derive(Debug, Clone, PartialEq)]
pub enum Token {
    Num(f64),
    Ident(String),
    Op(char),
    LParen,
    RParen,
    Comma,
}

/// The lexer's state machine.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LexState {
    Start,
    InNumber { start: usize, dots: u8 },
    InIdent(usize),
    Done,
}

#[inline(never)]
pub fn step(state: LexState, pos: usize, c: char) -> LexState {
    match (state, c) {
        (_, '\0') => LexState::Done,
        (LexState::InNumber { start, dots }, '.') => LexState::InNumber { start, dots: dots + 1 },
        (LexState::InNumber { start, dots }, d) if d.is_ascii_digit() => LexState::InNumber { start, dots },
        (LexState::InIdent(s), a) if a.is_alphanumeric() || a == '_' => LexState::InIdent(s),
        (_, d) if d.is_ascii_digit() => LexState::InNumber { start: pos, dots: 0 },
        (_, a) if a.is_alphabetic() => LexState::InIdent(pos),
        _ => LexState::Start,
    }
}

#[inline(never)]
pub fn tokenize(src: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = src.chars().chain(std::iter::once('\0')).collect();
    let mut out = Vec::new();
    let mut state = LexState::Start;
    for (pos, &c) in chars.iter().enumerate() {
        let next = step(state, pos, c);
        // flush a finished number / identifier
        match (state, next) {
            (LexState::InNumber { start, .. }, n) if !matches!(n, LexState::InNumber { .. }) => {
                let text: String = chars[start..pos].iter().collect();
                out.push(Token::Num(text.parse::<f64>().map_err(|e| format!("{text}: {e}"))?));
            }
            (LexState::InIdent(start), n) if !matches!(n, LexState::InIdent(_)) => {
                out.push(Token::Ident(chars[start..pos].iter().collect()));
            }
            _ => {}
        }
        if matches!(next, LexState::Start) {
            match c {
                '+' | '-' | '*' | '/' | '^' => out.push(Token::Op(c)),
                '(' => out.push(Token::LParen),
                ')' => out.push(Token::RParen),
                ',' => out.push(Token::Comma),
                ' ' => {}
                other => return Err(format!("unexpected {other:?} at {pos}")),
            }
        }
        state = next;
    }
    Ok(out)
}

// ---------------------------------------------------------------- AST + parser

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Num(f64),
    Var(String),
    Neg(Box<Expr>),
    Bin { op: char, lhs: Box<Expr>, rhs: Box<Expr> },
    Call(String, Vec<Expr>),
}

pub struct Parser {
    toks: VecDeque<Token>,
}

impl Parser {
    pub fn new(toks: Vec<Token>) -> Self {
        Parser { toks: toks.into_iter().collect() }
    }
    fn prec(op: char) -> u8 {
        match op {
            '+' | '-' => 1,
            '*' | '/' => 2,
            '^' => 3,
            _ => 0,
        }
    }
    pub fn parse_expr(&mut self, min_prec: u8) -> Result<Expr, String> {
        let mut lhs = self.parse_atom()?;
        while let Some(Token::Op(op)) = self.toks.front().cloned() {
            let p = Self::prec(op);
            if p < min_prec {
                break;
            }
            self.toks.pop_front();
            let next_min = if op == '^' { p } else { p + 1 };
            let rhs = self.parse_expr(next_min)?;
            lhs = Expr::Bin { op, lhs: Box::new(lhs), rhs: Box::new(rhs) };
        }
        Ok(lhs)
    }
    fn parse_atom(&mut self) -> Result<Expr, String> {
        match self.toks.pop_front() {
            Some(Token::Num(v)) => Ok(Expr::Num(v)),
            Some(Token::Op('-')) => Ok(Expr::Neg(Box::new(self.parse_expr(3)?))),
            Some(Token::LParen) => {
                let e = self.parse_expr(1)?;
                match self.toks.pop_front() {
                    Some(Token::RParen) => Ok(e),
                    t => Err(format!("expected ')', got {t:?}")),
                }
            }
            Some(Token::Ident(name)) => {
                if self.toks.front() == Some(&Token::LParen) {
                    self.toks.pop_front();
                    let mut args = Vec::new();
                    loop {
                        args.push(self.parse_expr(1)?);
                        match self.toks.pop_front() {
                            Some(Token::Comma) => continue,
                            Some(Token::RParen) => break,
                            t => return Err(format!("expected ',' or ')', got {t:?}")),
                        }
                    }
                    Ok(Expr::Call(name, args))
                } else {
                    Ok(Expr::Var(name))
                }
            }
            t => Err(format!("unexpected token {t:?}")),
        }
    }
}

#[inline(never)]
pub fn parse(src: &str) -> Result<Expr, String> {
    let toks = tokenize(src)?;
    let mut p = Parser::new(toks);
    p.parse_expr(1)
}

/// Recursive: depth of an expression tree.
#[inline(never)]
pub fn depth(e: &Expr) -> u32 {
    match e {
        Expr::Num(_) | Expr::Var(_) => 1,
        Expr::Neg(inner) => 1 + depth(inner),
        Expr::Bin { lhs, rhs, .. } => 1 + depth(lhs).max(depth(rhs)),
        Expr::Call(_, args) => 1 + args.iter().map(depth).max().unwrap_or(0),
    }
}

// ---------------------------------------------------------------- functions (trait objects)

pub trait Function: Debug {
    fn name(&self) -> &str;
    fn arity(&self) -> usize;
    fn apply(&self, args: &[f64]) -> f64;
}

#[derive(Debug)]
pub struct Hypot;
#[derive(Debug)]
pub struct Clamp {
    pub lo: f64,
    pub hi: f64,
}
#[derive(Debug)]
pub struct Poly {
    pub coeffs: Vec<f64>,
}

impl Function for Hypot {
    fn name(&self) -> &str {
        "hypot"
    }
    fn arity(&self) -> usize {
        2
    }
    #[inline(never)]
    fn apply(&self, args: &[f64]) -> f64 {
        (args[0] * args[0] + args[1] * args[1]).sqrt()
    }
}

impl Function for Clamp {
    fn name(&self) -> &str {
        "clamp"
    }
    fn arity(&self) -> usize {
        1
    }
    #[inline(never)]
    fn apply(&self, args: &[f64]) -> f64 {
        args[0].max(self.lo).min(self.hi)
    }
}

impl Function for Poly {
    fn name(&self) -> &str {
        "poly"
    }
    fn arity(&self) -> usize {
        1
    }
    #[inline(never)]
    fn apply(&self, args: &[f64]) -> f64 {
        self.coeffs.iter().rev().fold(0.0, |acc, c| acc * args[0] + c)
    }
}

pub type Registry = HashMap<String, Rc<dyn Function>>;

pub fn registry() -> Registry {
    let fs: Vec<Rc<dyn Function>> = vec![
        Rc::new(Hypot),
        Rc::new(Clamp { lo: 0.0, hi: 10.0 }),
        Rc::new(Poly { coeffs: vec![1.0, 2.0, 3.0] }),
    ];
    fs.into_iter().map(|f| (f.name().to_string(), f)).collect()
}

/// Takes the function as a trait object reference.
#[inline(never)]
pub fn call_fn(f: &dyn Function, args: &[f64]) -> Result<f64, String> {
    if args.len() != f.arity() {
        return Err(format!("{} wants {} args, got {}", f.name(), f.arity(), args.len()));
    }
    Ok(f.apply(args))
}

// ---------------------------------------------------------------- evaluation

#[derive(Debug, Clone, PartialEq)]
pub enum EvalError {
    UnknownVar(String),
    UnknownFn { name: String, arity: usize },
    Math(String),
}

pub struct Env {
    pub vars: HashMap<String, f64>,
    pub funcs: Registry,
    pub seen: RefCell<HashSet<String>>,
    pub history: Rc<RefCell<Vec<f64>>>,
}

#[inline(never)]
pub fn eval(e: &Expr, env: &Env) -> Result<f64, EvalError> {
    match e {
        Expr::Num(v) => Ok(*v),
        Expr::Var(n) => {
            env.seen.borrow_mut().insert(n.clone());
            env.vars.get(n).copied().ok_or_else(|| EvalError::UnknownVar(n.clone()))
        }
        Expr::Neg(inner) => Ok(-eval(inner, env)?),
        Expr::Bin { op, lhs, rhs } => {
            let (a, b) = (eval(lhs, env)?, eval(rhs, env)?);
            let v = match op {
                '+' => a + b,
                '-' => a - b,
                '*' => a * b,
                '/' if b == 0.0 => return Err(EvalError::Math("division by zero".into())),
                '/' => a / b,
                '^' => a.powf(b),
                _ => unreachable!(),
            };
            env.history.borrow_mut().push(v);
            Ok(v)
        }
        Expr::Call(name, args) => {
            let f = env
                .funcs
                .get(name)
                .ok_or_else(|| EvalError::UnknownFn { name: name.clone(), arity: args.len() })?;
            let vals = args.iter().map(|a| eval(a, env)).collect::<Result<Vec<f64>, _>>()?;
            call_fn(f.as_ref(), &vals).map_err(EvalError::Math)
        }
    }
}

// ---------------------------------------------------------------- statistics kit

#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub count: usize,
    pub mean: f64,
    pub min: f64,
    pub max: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Span {
    pub lo: i64,
    pub hi: i64,
}

pub trait Reducer: Debug {
    fn label(&self) -> String;
    fn reduce(&self, xs: &[f64]) -> f64;
}

#[derive(Debug)]
pub struct Mean;
#[derive(Debug)]
pub struct Quantile(pub f64);

impl Reducer for Mean {
    fn label(&self) -> String {
        "mean".to_string()
    }
    #[inline(never)]
    fn reduce(&self, xs: &[f64]) -> f64 {
        xs.iter().sum::<f64>() / xs.len() as f64
    }
}

impl Reducer for Quantile {
    fn label(&self) -> String {
        format!("q{}", self.0)
    }
    #[inline(never)]
    fn reduce(&self, xs: &[f64]) -> f64 {
        let mut v = xs.to_vec();
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let idx = ((v.len() - 1) as f64 * self.0).round() as usize;
        v[idx]
    }
}

#[inline(never)]
pub fn run_reducer(r: Arc<dyn Reducer + Send + Sync>, xs: &[f64]) -> (String, f64) {
    (r.label(), r.reduce(xs))
}

#[inline(never)]
pub fn min_max(xs: &[f64]) -> (f64, f64) {
    xs.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| (lo.min(x), hi.max(x)))
}

#[inline(never)]
pub fn summarize(name: &str, xs: &[f64]) -> Summary {
    let (min, max) = min_max(xs);
    let _ = name;
    Summary { count: xs.len(), mean: xs.iter().sum::<f64>() / xs.len() as f64, min, max }
}

#[inline(never)]
pub fn span_of(xs: &[i64]) -> Span {
    Span { lo: *xs.iter().min().unwrap(), hi: *xs.iter().max().unwrap() }
}

/// Generic, used with several types.
#[inline(never)]
pub fn largest<T: PartialOrd + Copy + Debug>(xs: &[T]) -> Option<T> {
    let mut it = xs.iter().copied();
    let first = it.next()?;
    Some(it.fold(first, |m, x| if x > m { x } else { m }))
}

/// Higher-order: applies `f` n times.
#[inline(never)]
pub fn apply_n<F: Fn(i64) -> i64>(f: F, x: i64, n: u32) -> i64 {
    (0..n).fold(x, |acc, _| f(acc))
}

#[inline(never)]
pub fn map_reduce<M, R>(xs: &[i64], map: M, reduce: R, init: i64) -> i64
where
    M: Fn(i64) -> i64,
    R: Fn(i64, i64) -> i64,
{
    xs.iter().map(|&x| map(x)).fold(init, reduce)
}

/// Recursive, not tail-recursive.
#[inline(never)]
pub fn fib(n: u32) -> u64 {
    if n < 2 {
        n as u64
    } else {
        fib(n - 1) + fib(n - 2)
    }
}

/// Histogram of values into buckets of width `width`: the loop body is worth a line probe.
#[inline(never)]
pub fn histogram(xs: &[i64], width: i64) -> BTreeMap<i64, u32> {
    let mut h = BTreeMap::new();
    let mut counted = 0u32;
    for &x in xs {
        let bucket = x.div_euclid(width);
        *h.entry(bucket).or_insert(0) += 1;
        counted += 1;
    }
    assert_eq!(counted as usize, xs.len());
    h
}

#[inline(never)]
pub fn busiest(h: &BTreeMap<i64, u32>) -> Option<(i64, u32)> {
    h.iter().max_by_key(|(k, v)| (**v, -**k)).map(|(k, v)| (*k, *v))
}

#[inline(never)]
pub fn lookup_all(vars: &HashMap<String, f64>, names: &[&str]) -> Vec<Option<f64>> {
    names.iter().map(|n| vars.get(*n).copied()).collect()
}

#[inline(never)]
pub fn script_name(p: &PathBuf) -> String {
    p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
}

#[inline(never)]
pub fn record_total(total: &Mutex<u64>, add: u64) -> u64 {
    let mut g = total.lock().unwrap();
    *g += add;
    *g
}

#[inline(never)]
pub fn describe_shape(s: &Token) -> String {
    match s {
        Token::Num(v) => format!("num {v}"),
        Token::Ident(s) => format!("ident {s}"),
        Token::Op(c) => format!("op {c}"),
        other => format!("{other:?}"),
    }
}

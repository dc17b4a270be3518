//! Trait objects where they sit: behind a reference, in a tuple behind a reference, and
//! inside types that hold them after other fields (Rc<dyn T>: the counts come first).
//! Every traced function prints its argument with {:?}.
use std::cell::RefCell;
use std::hint::black_box;
use std::rc::Rc;
use std::sync::Arc;

pub trait Show: std::fmt::Debug {
    fn v(&self) -> u64;
}

#[derive(Debug)]
pub struct A {
    pub x: u64,
    pub y: u64,
}

#[derive(Debug)]
pub struct B {
    pub s: String,
    pub items: Vec<u32>,
}

impl Show for A {
    fn v(&self) -> u64 {
        self.x + self.y
    }
}

impl Show for B {
    fn v(&self) -> u64 {
        self.s.len() as u64 + self.items.iter().map(|&i| i as u64).sum::<u64>()
    }
}

#[inline(never)]
pub fn ref_box(r: &Box<dyn Show>) -> u64 {
    println!("ref_box {:?}", r);
    r.v()
}

#[inline(never)]
pub fn pair(p: &(usize, &Box<dyn Show>)) -> u64 {
    println!("pair {:?}", p);
    p.0 as u64 + p.1.v()
}

#[inline(never)]
pub fn by_rc(r: Rc<dyn Show>) -> u64 {
    println!("by_rc {:?}", r);
    r.v()
}

#[inline(never)]
pub fn ref_rc(r: &Rc<dyn Show>) -> u64 {
    println!("ref_rc {:?}", r);
    r.v()
}

#[inline(never)]
pub fn by_arc(r: Arc<dyn Show>) -> u64 {
    println!("by_arc {:?}", r);
    r.v()
}

#[inline(never)]
pub fn rc_refcell(r: Rc<RefCell<dyn Show>>) -> u64 {
    println!("rc_refcell {:?}", r);
    r.borrow().v()
}

fn main() {
    let a: Rc<dyn Show> = Rc::new(A { x: 7, y: 9 });
    let b: Rc<dyn Show> = Rc::new(B { s: "hello".into(), items: vec![1, 2] });
    let _second = a.clone(); // a strong count of 3 while by_rc runs: not A's x
    black_box(by_rc(a.clone()));
    black_box(by_rc(b.clone()));
    black_box(ref_rc(&a));
    black_box(by_arc(Arc::new(A { x: 1, y: 2 })));
    black_box(rc_refcell(Rc::new(RefCell::new(A { x: 5, y: 6 }))));
    let boxes: Vec<Box<dyn Show>> =
        vec![Box::new(A { x: 3, y: 4 }), Box::new(B { s: "boxed".into(), items: vec![7, 8, 9] })];
    for (i, boxed) in boxes.iter().enumerate() {
        black_box(ref_box(boxed));
        black_box(pair(black_box(&(i, boxed))));
    }
}

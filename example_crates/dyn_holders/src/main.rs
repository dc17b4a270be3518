//! Trait objects where they sit: behind a reference, in a tuple behind a reference, and
//! inside types that hold them after other fields (Rc<dyn T>: the counts come first, and
//! the value at an offset its alignment decides). Every traced function prints its
//! argument (or what it returns) with {:?}.
use std::cell::RefCell;
use std::hint::black_box;
use std::rc::{Rc, Weak};
use std::sync::{Arc, Mutex};

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

/// Aligned to 16 (a u128): in an RcInner it sits at offset 16, after the counts, but
/// in a RefCell after its 8-byte borrow flag at offset 16 as well, and so on.
#[derive(Debug)]
pub struct C {
    pub wide: u128,
    pub tag: u8,
}

/// A zero-sized implementation: nothing to read behind the pointer.
#[derive(Debug)]
pub struct Z;

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

impl Show for C {
    fn v(&self) -> u64 {
        (self.wide as u64).wrapping_add(self.tag as u64)
    }
}

impl Show for Z {
    fn v(&self) -> u64 {
        0
    }
}

#[derive(Debug)]
pub struct Holder {
    pub id: u32,
    pub item: Rc<dyn Show>,
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
    println!("counts by_rc {} {}", Rc::strong_count(&r), Rc::weak_count(&r));
    r.v()
}

#[inline(never)]
pub fn ref_rc(r: &Rc<dyn Show>) -> u64 {
    println!("ref_rc {:?}", r);
    println!("counts ref_rc {} {}", Rc::strong_count(r), Rc::weak_count(r));
    r.v()
}

#[inline(never)]
pub fn by_arc(r: Arc<dyn Show>) -> u64 {
    println!("by_arc {:?}", r);
    println!("counts by_arc {} {}", Arc::strong_count(&r), Arc::weak_count(&r));
    r.v()
}

#[inline(never)]
pub fn rc_refcell(r: Rc<RefCell<dyn Show>>) -> u64 {
    println!("rc_refcell {:?}", r.borrow());
    r.borrow().v()
}

#[inline(never)]
pub fn arc_mutex(m: Arc<Mutex<dyn Show>>) -> u64 {
    let guard = m.lock().unwrap();
    println!("arc_mutex {:?}", guard);
    guard.v()
}

#[inline(never)]
pub fn rc_vec(v: &Vec<Rc<dyn Show>>) -> u64 {
    println!("rc_vec {:?}", v);
    v.iter().map(|r| r.v()).sum()
}

#[inline(never)]
pub fn held(h: &Holder) -> u64 {
    println!("held {:?}", h);
    h.id as u64 + h.item.v()
}

#[inline(never)]
pub fn make_rc(k: u64) -> Rc<dyn Show> {
    let made: Rc<dyn Show> = match k {
        0 => Rc::new(A { x: k + 10, y: k + 20 }),
        1 => Rc::new(B { s: format!("made{k}"), items: vec![k as u32; 3] }),
        _ => Rc::new(C { wide: (1u128 << 100) + k as u128, tag: k as u8 }),
    };
    println!("make_rc {:?}", made);
    made
}

#[inline(never)]
pub fn weak_dyn(ws: &[Weak<dyn Show>]) -> u64 {
    let mut total = 0;
    for w in ws {
        println!("counts weak_dyn {} {}", w.strong_count(), w.weak_count());
        match w.upgrade() {
            Some(v) => {
                println!("weak_item {:?}", v);
                total += v.v();
            }
            None => println!("weak_item None"),
        }
    }
    total
}

fn main() {
    let a: Rc<dyn Show> = Rc::new(A { x: 7, y: 9 });
    let b: Rc<dyn Show> = Rc::new(B { s: "hello".into(), items: vec![1, 2] });
    let c: Rc<dyn Show> = Rc::new(C { wide: (1u128 << 100) + 3, tag: 42 });
    let z: Rc<dyn Show> = Rc::new(Z);
    let _second = a.clone(); // a strong count of 3 while by_rc runs: not A's x
    black_box(by_rc(a.clone()));
    black_box(by_rc(b.clone()));
    black_box(by_rc(c.clone()));
    black_box(by_rc(z.clone()));
    black_box(ref_rc(&a));
    black_box(ref_rc(&c));
    black_box(by_arc(Arc::new(A { x: 1, y: 2 })));
    black_box(by_arc(Arc::new(C { wide: u128::MAX - 1, tag: 7 })));
    black_box(rc_refcell(Rc::new(RefCell::new(A { x: 5, y: 6 }))));
    black_box(rc_refcell(Rc::new(RefCell::new(C { wide: 1u128 << 70, tag: 9 }))));
    black_box(arc_mutex(Arc::new(Mutex::new(A { x: 13, y: 14 }))));
    black_box(arc_mutex(Arc::new(Mutex::new(C { wide: (1u128 << 90) + 1, tag: 3 }))));
    let all = vec![a.clone(), b.clone(), c.clone(), z.clone()];
    black_box(rc_vec(black_box(&all)));
    black_box(held(black_box(&Holder { id: 11, item: c.clone() })));
    black_box(held(black_box(&Holder { id: 12, item: b.clone() })));
    for k in 0..3 {
        black_box(make_rc(black_box(k)));
    }
    let alive: Weak<dyn Show> = Rc::downgrade(&c);
    let gone: Weak<dyn Show> = {
        let short: Rc<dyn Show> = Rc::new(A { x: 100, y: 200 });
        Rc::downgrade(&short)
    };
    black_box(weak_dyn(black_box(&[alive, gone])));
    let boxes: Vec<Box<dyn Show>> = vec![
        Box::new(A { x: 3, y: 4 }),
        Box::new(B { s: "boxed".into(), items: vec![7, 8, 9] }),
        Box::new(C { wide: (1u128 << 64) + 1, tag: 5 }),
    ];
    for (i, boxed) in boxes.iter().enumerate() {
        black_box(ref_box(boxed));
        black_box(pair(black_box(&(i, boxed))));
    }
}

//! One `#[inline(never)]` function per std type. Each prints its arguments with `{:?}` as
//! `ARG <function> <name> = <value>`; `main` prints each return value as
//! `RET <function> = <value>`. tests/integration/test_stdtypes.py reads the text back and
//! compares it with what pytest-uprobe decoded. `stdtypes lines N LEN` passes N strings of
//! LEN bytes to `t_lines` only (it prints their lengths); `stdtypes repeat N` calls
//! `t_word` N times (for benchmarks).

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::ffi::{CStr, CString, OsStr, OsString};
use std::hint::black_box;
use std::num::{NonZeroI64, NonZeroU32, NonZeroU8};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub struct Book {
    title: String,
    year: u32,
    tags: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    x: i32,
    y: i32,
}

pub trait Scorer: std::fmt::Debug {
    fn score(&self, book: &Book) -> u32;
}

#[derive(Debug)]
pub struct ByYear {
    base: u32,
}

#[derive(Debug)]
pub struct ByTitle {
    weight: u64,
    name: String,
}

impl Scorer for ByYear {
    fn score(&self, book: &Book) -> u32 {
        book.year - self.base
    }
}

impl Scorer for ByTitle {
    fn score(&self, book: &Book) -> u32 {
        (book.title.len() as u64 * self.weight) as u32 + self.name.len() as u32
    }
}

macro_rules! show {
    ($f:literal, $($name:ident),*) => {
        $(println!("ARG {} {} = {:?}", $f, stringify!($name), $name);)*
    };
}

macro_rules! ret {
    ($f:literal, $value:expr) => {{
        let value = $value;
        println!("RET {} = {:?}", $f, value);
    }};
}

#[inline(never)]
pub fn t_string(s: String) -> usize {
    show!("t_string", s);
    s.len()
}

#[inline(never)]
pub fn t_osstr(s: &OsStr) -> usize {
    show!("t_osstr", s);
    s.len()
}

#[inline(never)]
pub fn t_osstring(s: OsString) -> usize {
    show!("t_osstring", s);
    s.len()
}

#[inline(never)]
pub fn t_cstr(s: &CStr) -> usize {
    show!("t_cstr", s);
    s.to_bytes().len()
}

#[inline(never)]
pub fn t_cstring(s: CString) -> usize {
    show!("t_cstring", s);
    s.as_bytes().len()
}

#[inline(never)]
pub fn t_path(p: &Path) -> usize {
    show!("t_path", p);
    p.as_os_str().len()
}

#[inline(never)]
pub fn t_pathbuf(p: PathBuf) -> PathBuf {
    show!("t_pathbuf", p);
    p.join("child")
}

#[inline(never)]
pub fn t_vec(v: Vec<u16>) -> usize {
    show!("t_vec", v);
    v.len()
}

#[inline(never)]
pub fn t_array(a: [u8; 4]) -> u8 {
    show!("t_array", a);
    a[0]
}

#[inline(never)]
pub fn t_vecdeque(d: &VecDeque<u32>) -> usize {
    show!("t_vecdeque", d);
    d.len()
}

#[inline(never)]
pub fn t_hashmap(m: &HashMap<String, u32>) -> usize {
    show!("t_hashmap", m);
    m.len()
}

#[inline(never)]
pub fn t_hashset(s: &HashSet<u64>) -> usize {
    show!("t_hashset", s);
    s.len()
}

#[inline(never)]
pub fn t_btreemap(m: &BTreeMap<u32, String>) -> usize {
    show!("t_btreemap", m);
    m.len()
}

#[inline(never)]
pub fn t_btreeset(s: &BTreeSet<i32>) -> usize {
    show!("t_btreeset", s);
    s.len()
}

#[inline(never)]
pub fn t_rc(r: Rc<u32>) -> u32 {
    show!("t_rc", r);
    *r
}

#[inline(never)]
pub fn t_arc(a: Arc<String>) -> usize {
    show!("t_arc", a);
    a.len()
}

#[inline(never)]
pub fn t_box(b: Box<Point>) -> i32 {
    show!("t_box", b);
    b.x
}

#[inline(never)]
pub fn t_cell(c: &Cell<u32>) -> u32 {
    show!("t_cell", c);
    c.get()
}

#[inline(never)]
pub fn t_refcell(r: &RefCell<Vec<u32>>) -> usize {
    show!("t_refcell", r);
    r.borrow().len()
}

#[inline(never)]
pub fn t_mutex(m: &Mutex<u32>) -> u32 {
    show!("t_mutex", m);
    *m.lock().unwrap()
}

#[inline(never)]
pub fn t_rwlock(l: &RwLock<i64>) -> i64 {
    show!("t_rwlock", l);
    *l.read().unwrap()
}

#[inline(never)]
pub fn t_nonzero(a: NonZeroU32, b: NonZeroI64, c: Option<NonZeroU8>) -> u32 {
    show!("t_nonzero", a, b, c);
    a.get()
}

#[inline(never)]
pub fn t_duration(d: Duration) -> Duration {
    show!("t_duration", d);
    d * 2
}

#[inline(never)]
pub fn t_option(o: Option<PathBuf>) -> Option<usize> {
    show!("t_option", o);
    o.map(|p| p.as_os_str().len())
}

#[inline(never)]
pub fn t_result(r: Result<u32, String>) -> bool {
    show!("t_result", r);
    r.is_ok()
}

#[inline(never)]
pub fn t_books(books: &[Book]) -> usize {
    show!("t_books", books);
    books.iter().map(|b| b.tags.len()).sum()
}

#[inline(never)]
pub fn t_dyn(s: &dyn Scorer, book: &Book) -> u32 {
    show!("t_dyn", s, book);
    s.score(book)
}

#[inline(never)]
pub fn t_box_dyn(s: Box<dyn Scorer>) -> u32 {
    show!("t_box_dyn", s);
    s.score(&Book { title: "x".into(), year: 2000, tags: vec![] })
}

#[inline(never)]
pub fn t_lines(lines: &[String]) -> usize {
    let lens: Vec<usize> = lines.iter().map(|l| l.len()).collect();
    println!("ARG t_lines lines = {:?}", lens);
    lines.len()
}

/// Not printed: `stdtypes repeat N` calls it N times, to measure the cost of big events.
#[inline(never)]
pub fn t_word(word: &str, book: &Book) -> usize {
    word.len() + book.tags.len()
}

fn book(title: &str, year: u32, tags: &[&str]) -> Book {
    Book { title: title.into(), year, tags: tags.iter().map(|t| t.to_string()).collect() }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let word = |i: usize, default: &str| args.get(i).cloned().unwrap_or_else(|| default.into());
    if word(1, "") == "repeat" {
        let n: usize = word(2, "1000").parse().unwrap();
        let dune = book("Dune", 1965, &["sf", "classic", "desert"]);
        let mut sum = 0;
        for i in 0..n {
            sum += t_word(black_box(["alpha", "beta", "gamma"][i % 3]), black_box(&dune));
        }
        println!("repeat {} sum {}", n, sum);
        return;
    }
    if word(1, "") == "lines" {
        // `lines N LEN`: N strings of LEN bytes each ('a', 'b', ... 'z', 'a', ...), to fill an event.
        let n: usize = word(2, "4").parse().unwrap();
        let len: usize = word(3, "3000").parse().unwrap();
        let lines: Vec<String> =
            (0..n).map(|i| ((b'a' + (i % 26) as u8) as char).to_string().repeat(len)).collect();
        ret!("t_lines", t_lines(black_box(&lines)));
        return;
    }

    ret!("t_string", t_string(black_box(word(1, "héllo"))));
    ret!("t_osstr", t_osstr(black_box(OsStr::new("plain"))));
    ret!("t_osstr", t_osstr(black_box(OsStr::from_bytes(b"bad\xff\xfeend"))));
    ret!("t_osstring", t_osstring(black_box(OsString::from_vec(b"os\xc3\x28x".to_vec()))));
    ret!("t_cstr", t_cstr(black_box(c"a C string")));
    ret!("t_cstring", t_cstring(black_box(CString::new(b"owned\xe9".to_vec()).unwrap())));
    ret!("t_path", t_path(black_box(Path::new("/home/me/project/src"))));
    ret!("t_pathbuf", t_pathbuf(black_box(PathBuf::from("relative/dir"))));
    ret!("t_vec", t_vec(black_box(vec![1, 2, 300])));
    ret!("t_array", t_array(black_box([9, 8, 7, 6])));

    let mut deque: VecDeque<u32> = VecDeque::with_capacity(4);
    for i in 0..4 {
        deque.push_back(i);
    }
    deque.pop_front();
    deque.pop_front();
    deque.push_back(10);
    deque.push_back(11); // wraps around: head 2, len 4, cap 4
    deque.push_front(99); // grows
    ret!("t_vecdeque", t_vecdeque(black_box(&deque)));
    let mut wrapped: VecDeque<u32> = VecDeque::with_capacity(8);
    for i in 0..8 {
        wrapped.push_back(100 + i);
    }
    for _ in 0..5 {
        wrapped.pop_front();
    }
    wrapped.push_back(7);
    wrapped.push_back(8);
    ret!("t_vecdeque", t_vecdeque(black_box(&wrapped)));

    let mut map = HashMap::new();
    for (i, name) in ["ada", "grace", "linus", "ken", "dennis"].iter().enumerate() {
        map.insert(name.to_string(), i as u32 * 10);
    }
    ret!("t_hashmap", t_hashmap(black_box(&map)));
    ret!("t_hashmap", t_hashmap(black_box(&HashMap::new())));
    let set: HashSet<u64> = (1..=20).map(|i| i * i).collect();
    ret!("t_hashset", t_hashset(black_box(&set)));

    let small: BTreeMap<u32, String> = (1..=5).map(|i| (i * 3, format!("v{i}"))).collect();
    ret!("t_btreemap", t_btreemap(black_box(&small)));
    let bigger: BTreeSet<i32> = (0..40).map(|i| i * 7 - 100).collect();
    ret!("t_btreeset", t_btreeset(black_box(&bigger)));
    let tiny: BTreeSet<i32> = [3, -1].into_iter().collect();
    ret!("t_btreeset", t_btreeset(black_box(&tiny)));

    let shared = Rc::new(41u32);
    let _other = Rc::clone(&shared);
    ret!("t_rc", t_rc(black_box(Rc::clone(&shared))));
    ret!("t_arc", t_arc(black_box(Arc::new("in an arc".to_string()))));
    ret!("t_box", t_box(black_box(Box::new(Point { x: 3, y: -4 }))));
    ret!("t_cell", t_cell(black_box(&Cell::new(17))));
    let cell = RefCell::new(vec![5, 6, 7]);
    ret!("t_refcell", t_refcell(black_box(&cell)));
    ret!("t_mutex", t_mutex(black_box(&Mutex::new(23))));
    ret!("t_rwlock", t_rwlock(black_box(&RwLock::new(-5))));
    ret!(
        "t_nonzero",
        t_nonzero(
            black_box(NonZeroU32::new(7).unwrap()),
            black_box(NonZeroI64::new(-9).unwrap()),
            black_box(NonZeroU8::new(200)),
        )
    );
    ret!("t_duration", t_duration(black_box(Duration::new(3, 500_000_000))));
    ret!("t_duration", t_duration(black_box(Duration::from_nanos(1_234_567))));
    ret!("t_option", t_option(black_box(Some(PathBuf::from("/tmp/x")))));
    ret!("t_option", t_option(black_box(None)));
    ret!("t_result", t_result(black_box(Ok(3))));
    ret!("t_result", t_result(black_box(Err("no".to_string()))));

    let books = vec![
        book("Dune", 1965, &["sf", "classic", "desert"]),
        book("Emma", 1815, &["romance"]),
        book("Ulysses", 1922, &["modernist", "dublin", "long", "classic"]),
        book("Neuromancer", 1984, &["sf", "cyberpunk"]),
    ];
    ret!("t_books", t_books(black_box(&books)));
    ret!("t_dyn", t_dyn(black_box(&ByYear { base: 1900 }), black_box(&books[0])));
    ret!("t_dyn", t_dyn(black_box(&ByTitle { weight: 3, name: "t".into() }), black_box(&books[1])));
    ret!("t_box_dyn", t_box_dyn(black_box(Box::new(ByYear { base: 1000 }))));
}

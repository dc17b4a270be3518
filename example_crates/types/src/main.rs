//! One `#[inline(never)]` function per value type. Each function prints its arguments
//! with `{:?}` as `ARG <function> <name> = <value>`; `main` prints each return value as
//! `RET <function> = <value>`. The first command-line argument picks what runs:
//! `all` (fixed values), `ints I8 I16 I32 I64 I128 ISIZE U8 U16 U32 U64 U128 USIZE`,
//! `str S`, `chars C...`, `vec N...`, `strings S...`, `floats X...`.

use std::env;
use std::hint::black_box;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    x: i32,
    y: i32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Person {
    name: String,
    age: u8,
    home: Point,
    tags: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Big {
    a: u64,
    b: i64,
    c: u32,
    d: [u16; 3],
    e: bool,
    f: char,
    g: u64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pair(i16, u8);

#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    Circle(u32),
    Rect { w: u32, h: u32 },
    Label(String),
    Empty,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Level {
    Low,
    Mid,
    High = 7,
}

macro_rules! show {
    ($f:literal, $($name:ident),*) => {
        $(println!("ARG {} {} = {:?}", $f, stringify!($name), $name);)*
    };
}

macro_rules! int_fn {
    ($name:ident, $t:ty, $k:literal) => {
        #[inline(never)]
        fn $name(x: $t) -> $t {
            show!($k, x);
            black_box(x).wrapping_mul(3).wrapping_sub(1)
        }
    };
}

int_fn!(t_i8, i8, "t_i8");
int_fn!(t_i16, i16, "t_i16");
int_fn!(t_i32, i32, "t_i32");
int_fn!(t_i64, i64, "t_i64");
int_fn!(t_i128, i128, "t_i128");
int_fn!(t_isize, isize, "t_isize");
int_fn!(t_u8, u8, "t_u8");
int_fn!(t_u16, u16, "t_u16");
int_fn!(t_u32, u32, "t_u32");
int_fn!(t_u64, u64, "t_u64");
int_fn!(t_u128, u128, "t_u128");
int_fn!(t_usize, usize, "t_usize");

#[inline(never)]
fn t_many(a: u8, b: i64, c: u128, d: bool, e: i16, f: u32, g: i128) -> u16 {
    show!("t_many", a, b, c, d, e, f, g);
    black_box((a as u16).wrapping_add(e as u16))
}

#[inline(never)]
fn t_bool(x: bool) -> bool {
    show!("t_bool", x);
    !black_box(x)
}

#[inline(never)]
fn t_char(c: char) -> char {
    show!("t_char", c);
    char::from_u32(black_box(c) as u32 ^ 1).unwrap_or('?')
}

#[inline(never)]
fn t_f64(x: f64, y: f32) -> f64 {
    show!("t_f64", x, y);
    black_box(x) * 2.0 + y as f64
}

#[inline(never)]
fn t_str(s: &str) -> usize {
    show!("t_str", s);
    black_box(s).len()
}

#[inline(never)]
fn t_str_ret(s: &str) -> &str {
    show!("t_str_ret", s);
    black_box(s).trim_start_matches('a')
}

#[inline(never)]
fn t_string(s: String) -> String {
    show!("t_string", s);
    let mut out = black_box(s);
    out.push('!');
    out
}

#[inline(never)]
fn t_string_ref(s: &String) -> Option<char> {
    show!("t_string_ref", s);
    black_box(s).chars().last()
}

#[inline(never)]
fn t_slice(xs: &[i64]) -> i64 {
    show!("t_slice", xs);
    black_box(xs).iter().fold(0i64, |a, b| a.wrapping_add(*b))
}

#[inline(never)]
fn t_vec(v: Vec<i32>) -> Vec<i32> {
    show!("t_vec", v);
    black_box(v).iter().rev().map(|x| x.wrapping_mul(2)).collect()
}

#[inline(never)]
fn t_strings(v: &[String]) -> Vec<String> {
    show!("t_strings", v);
    black_box(v).iter().map(|s| s.to_uppercase()).collect()
}

#[inline(never)]
fn t_array(a: [u16; 4], b: [u32; 8]) -> [u8; 3] {
    show!("t_array", a, b);
    black_box([a[0] as u8, b[7] as u8, 9])
}

#[inline(never)]
fn t_tuple(t: (i32, bool, char)) -> (u8, i64) {
    show!("t_tuple", t);
    black_box((t.1 as u8, t.0 as i64 * 10))
}

#[inline(never)]
fn t_struct(p: Point, q: Pair) -> Point {
    show!("t_struct", p, q);
    black_box(Point { x: p.y + q.0 as i32, y: p.x - q.1 as i32 })
}

#[inline(never)]
fn t_person(p: &Person) -> Person {
    show!("t_person", p);
    let mut older = black_box(p).clone();
    older.age = older.age.wrapping_add(1);
    older.tags.push(String::from("older"));
    older
}

#[inline(never)]
fn t_big(b: Big) -> Big {
    show!("t_big", b);
    let b = black_box(b);
    Big { a: b.a + 1, b: -b.b, c: b.c ^ 0xff, d: [b.d[2], b.d[1], b.d[0]], e: !b.e, f: 'Z', g: b.g / 2 }
}

#[inline(never)]
fn t_option(o: Option<i32>, p: Option<u8>) -> Option<u64> {
    show!("t_option", o, p);
    black_box(o).map(|x| x as u64 + p.unwrap_or(0) as u64)
}

#[inline(never)]
fn t_option_ref(o: Option<&i64>) -> Option<&i64> {
    show!("t_option_ref", o);
    black_box(o)
}

#[inline(never)]
fn t_option_box(o: Option<Box<Point>>) -> bool {
    show!("t_option_box", o);
    black_box(o).is_some()
}

#[inline(never)]
fn t_option_string(o: Option<String>) -> Option<String> {
    show!("t_option_string", o);
    black_box(o).map(|s| s + "?")
}

#[inline(never)]
fn t_result(r: Result<i32, String>) -> Result<u8, bool> {
    show!("t_result", r);
    match black_box(r) {
        Ok(x) => Ok(x as u8),
        Err(e) => Err(e.is_empty()),
    }
}

#[inline(never)]
fn t_shape(s: &Shape, level: Level) -> Shape {
    show!("t_shape", s, level);
    match black_box(s) {
        Shape::Circle(r) => Shape::Rect { w: *r, h: level as u32 },
        Shape::Rect { w, h } => Shape::Circle(w + h),
        Shape::Label(text) => Shape::Label(text.to_lowercase()),
        Shape::Empty => Shape::Empty,
    }
}

#[inline(never)]
fn t_ref<'a>(x: &'a i64, p: &Point) -> &'a i64 {
    show!("t_ref", x, p);
    black_box(x)
}

#[inline(never)]
fn t_box(b: Box<Point>) -> Box<i32> {
    show!("t_box", b);
    Box::new(black_box(b).x * 3)
}

#[inline(never)]
#[allow(clippy::unused_unit)]
fn t_unit(u: ()) -> () {
    show!("t_unit", u);
    black_box(u)
}

macro_rules! ret {
    ($f:literal, $e:expr) => {
        println!("RET {} = {:?}", $f, $e)
    };
}

fn ints(v: &[String]) {
    ret!("t_i8", t_i8(v[0].parse().unwrap()));
    ret!("t_i16", t_i16(v[1].parse().unwrap()));
    ret!("t_i32", t_i32(v[2].parse().unwrap()));
    ret!("t_i64", t_i64(v[3].parse().unwrap()));
    ret!("t_i128", t_i128(v[4].parse().unwrap()));
    ret!("t_isize", t_isize(v[5].parse().unwrap()));
    ret!("t_u8", t_u8(v[6].parse().unwrap()));
    ret!("t_u16", t_u16(v[7].parse().unwrap()));
    ret!("t_u32", t_u32(v[8].parse().unwrap()));
    ret!("t_u64", t_u64(v[9].parse().unwrap()));
    ret!("t_u128", t_u128(v[10].parse().unwrap()));
    ret!("t_usize", t_usize(v[11].parse().unwrap()));
    let p = |i: usize| v[i].parse::<i128>().unwrap();
    ret!(
        "t_many",
        t_many(v[6].parse().unwrap(), v[3].parse().unwrap(), v[10].parse().unwrap(), p(0) < 0, v[1].parse().unwrap(), v[8].parse().unwrap(), v[4].parse().unwrap())
    );
}

fn strs(s: &str) {
    ret!("t_str", t_str(s));
    ret!("t_str_ret", t_str_ret(s));
    ret!("t_string", t_string(s.to_string()));
    ret!("t_string_ref", t_string_ref(&s.to_string()));
    ret!("t_option_string", t_option_string(Some(s.to_string())));
    ret!("t_result", t_result(Err(s.to_string())));
    ret!("t_shape", t_shape(&Shape::Label(s.to_string()), Level::High));
}

fn vecs(v: &[String]) {
    let ints: Vec<i64> = v.iter().map(|x| x.parse().unwrap()).collect();
    ret!("t_slice", t_slice(&ints));
    ret!("t_vec", t_vec(ints.iter().map(|x| *x as i32).collect()));
}

fn all() {
    ints(&["-128", "32767", "-5", "9223372036854775807", "-170141183460469231731687303715884105728", "-3", "255", "0", "4000000000", "18446744073709551615", "340282366920938463463374607431768211455", "7"].map(String::from));
    ret!("t_bool", t_bool(true));
    ret!("t_bool", t_bool(false));
    ret!("t_char", t_char('é'));
    ret!("t_f64", t_f64(-2.5, 0.1));
    strs("aab ünïcødé 🦀");
    vecs(&["1", "-2", "300000"].map(String::from));
    let owned = ["x", "", "yz ✓"].map(String::from);
    ret!("t_strings", t_strings(&owned));
    ret!("t_array", t_array([1, 2, 65535, 4], [10, 20, 30, 40, 50, 60, 70, 4000000000]));
    ret!("t_tuple", t_tuple((-7, true, 'q')));
    ret!("t_struct", t_struct(Point { x: 3, y: -4 }, Pair(-300, 200)));
    let person = Person {
        name: String::from("Ada"),
        age: 36,
        home: Point { x: 1, y: 2 },
        tags: vec![String::from("math"), String::from("engines")],
    };
    ret!("t_person", t_person(&person));
    ret!("t_big", t_big(Big { a: 1, b: -2, c: 3, d: [4, 5, 6], e: true, f: 'ß', g: u64::MAX }));
    ret!("t_option", t_option(Some(-1), None));
    ret!("t_option", t_option(None, Some(200)));
    let n = 42i64;
    ret!("t_option_ref", t_option_ref(Some(&n)));
    ret!("t_option_ref", t_option_ref(None));
    ret!("t_option_box", t_option_box(Some(Box::new(Point { x: 7, y: 8 }))));
    ret!("t_option_box", t_option_box(None));
    ret!("t_option_string", t_option_string(None));
    ret!("t_result", t_result(Ok(258)));
    ret!("t_result", t_result(Err(String::new())));
    ret!("t_shape", t_shape(&Shape::Circle(5), Level::Mid));
    ret!("t_shape", t_shape(&Shape::Rect { w: 2, h: 3 }, Level::Low));
    ret!("t_shape", t_shape(&Shape::Empty, Level::High));
    ret!("t_ref", t_ref(&n, &Point { x: -1, y: -2 }));
    ret!("t_box", t_box(Box::new(Point { x: 11, y: 12 })));
    ret!("t_unit", t_unit(()));
}

fn main() {
    let argv: Vec<String> = env::args().collect();
    let mode = argv.get(1).map(String::as_str).unwrap_or("all");
    let rest = &argv[argv.len().min(2)..];
    match mode {
        "all" => all(),
        "ints" => ints(rest),
        "str" => strs(&rest[0]),
        "chars" => {
            for c in rest.iter().flat_map(|s| s.chars()) {
                ret!("t_char", t_char(c));
            }
        }
        "vec" => vecs(rest),
        "strings" => ret!("t_strings", t_strings(rest)),
        "floats" => {
            for x in rest {
                let x: f64 = x.parse().unwrap();
                ret!("t_f64", t_f64(x, x as f32));
            }
        }
        other => {
            eprintln!("unknown mode {other}");
            std::process::exit(2);
        }
    }
}

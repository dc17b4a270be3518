//! Generates 10,000 functions `many::generated::f0000` .. `f9999`, each returning its number,
//! and a table of them that `main` calls, so none is dropped: a binary for tests of how
//! many functions one probe name may match.
use std::env;
use std::fmt::Write;
use std::fs;
use std::path::Path;

const COUNT: usize = 10_000;

fn main() {
    let mut code = String::new();
    for i in 0..COUNT {
        writeln!(code, "#[inline(never)] pub fn f{i:04}() -> u64 {{ std::hint::black_box({i}) }}").unwrap();
    }
    code.push_str("pub static ALL: [fn() -> u64; ");
    write!(code, "{COUNT}] = [").unwrap();
    for i in 0..COUNT {
        write!(code, "f{i:04},").unwrap();
    }
    code.push_str("];\n");
    let out = Path::new(&env::var("OUT_DIR").unwrap()).join("generated.rs");
    fs::write(out, code).unwrap();
    println!("cargo:rerun-if-changed=build.rs");
}

//! Compiles c/cfuncs.c with the system's gcc (-g -O0 by default; CABI_CFLAGS overrides) into
//! a static library: C functions with DWARF from another compiler, beside Rust ones.
use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    let flags = env::var("CABI_CFLAGS").unwrap_or_else(|_| "-g -O0".to_string());
    let object = out.join("cfuncs.o");
    let mut gcc = Command::new("gcc");
    gcc.args(flags.split_whitespace()).args(["-fno-omit-frame-pointer", "-c", "c/cfuncs.c", "-o"]).arg(&object);
    assert!(gcc.status().expect("gcc runs").success(), "gcc failed");
    let archive = out.join("libcfuncs.a");
    let _ = std::fs::remove_file(&archive);
    assert!(Command::new("ar").arg("crs").arg(&archive).arg(&object).status().unwrap().success());
    println!("cargo:rustc-link-search=native={}", out.display());
    println!("cargo:rustc-link-lib=static=cfuncs");
    println!("cargo:rerun-if-changed=c/cfuncs.c");
    println!("cargo:rerun-if-env-changed=CABI_CFLAGS");
}

//! The crate's own `src/lib.rs`: std, alloc, core and the deps under /rust/deps have one too,
//! and `src/lib.rs:LINE` means this one.

#[inline(never)]
pub fn lib_total(n: u64) -> u64 {
    std::hint::black_box(n) + 1 // probe: lib-total
}

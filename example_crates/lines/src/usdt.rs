//! Statically defined tracing probes (USDT) without any crate: each probe is a `nop` and a
//! `.note.stapsdt` note naming provider, probe, the address of the `nop`, a semaphore and
//! the argument specs (`8@%rax`: 8 bytes, unsigned, in rax), as `sys/sdt.h` writes them.
use std::arch::asm;
use std::ptr;

/// The semaphore of `lines:work`: a tracer increments it while attached (in the `.probes`
/// section, by sys/sdt.h's convention), so the program can skip work nobody looks at.
#[no_mangle]
#[link_section = ".probes"]
pub static mut lines_work_semaphore: u16 = 0;

/// A tracer is attached to `lines:work`.
pub fn work_enabled() -> bool {
    unsafe { ptr::read_volatile(ptr::addr_of!(lines_work_semaphore)) != 0 }
}

/// `lines:start(round, tenfold)`: no semaphore; both arguments in registers.
#[inline(always)]
pub fn start(round: u64, tenfold: u64) {
    unsafe {
        asm!(
            "990: nop",
            ".pushsection .note.stapsdt, \"\", \"note\"",
            ".balign 4",
            ".4byte 992f-991f, 994f-993f, 3",
            "991: .asciz \"stapsdt\"",
            "992: .balign 4",
            "993: .8byte 990b",
            ".8byte _.stapsdt.base",
            ".8byte 0",
            ".asciz \"lines\"",
            ".asciz \"start\"",
            ".asciz \"8@{0} 8@{1}\"",
            "994: .balign 4",
            ".popsection",
            ".ifndef _.stapsdt.base",
            ".pushsection .stapsdt.base, \"aG\", \"progbits\", .stapsdt.base, comdat",
            ".weak _.stapsdt.base",
            ".hidden _.stapsdt.base",
            "_.stapsdt.base: .space 1",
            ".size _.stapsdt.base, 1",
            ".popsection",
            ".endif",
            in(reg) round,
            in(reg) tenfold,
            options(att_syntax, nostack, preserves_flags),
        );
    }
}

/// `lines:work(round, summary)` with the semaphore `lines_work_semaphore`; `summary` is
/// signed 4 bytes (`-4@`) to check sign and size handling.
#[inline(always)]
pub fn work(round: u64, summary: u64) {
    let low = summary as i32;
    unsafe {
        asm!(
            "990: nop",
            ".pushsection .note.stapsdt, \"\", \"note\"",
            ".balign 4",
            ".4byte 992f-991f, 994f-993f, 3",
            "991: .asciz \"stapsdt\"",
            "992: .balign 4",
            "993: .8byte 990b",
            ".8byte _.stapsdt.base",
            ".8byte {sem}",
            ".asciz \"lines\"",
            ".asciz \"work\"",
            ".asciz \"8@{0} -4@{1:e}\"",
            "994: .balign 4",
            ".popsection",
            ".ifndef _.stapsdt.base",
            ".pushsection .stapsdt.base, \"aG\", \"progbits\", .stapsdt.base, comdat",
            ".weak _.stapsdt.base",
            ".hidden _.stapsdt.base",
            "_.stapsdt.base: .space 1",
            ".size _.stapsdt.base, 1",
            ".popsection",
            ".endif",
            in(reg) round,
            in(reg) low,
            sem = sym lines_work_semaphore,
            options(att_syntax, nostack, preserves_flags),
        );
    }
}

//! A USDT probe `stockpile:progress(worker_id, step)`, without any crate.

#[no_mangle]
#[link_section = ".probes"]
pub static mut stockpile_progress_semaphore: u16 = 0;

pub fn progress_enabled() -> bool {
    unsafe { std::ptr::read_volatile(std::ptr::addr_of!(stockpile_progress_semaphore)) != 0 }
}

#[inline(always)]
pub fn progress(id: u64, step: u64) {
    unsafe {
        std::arch::asm!(
            "990: nop",
            ".pushsection .note.stapsdt, \"\", \"note\"",
            ".balign 4",
            ".4byte 992f-991f, 994f-993f, 3",
            "991: .asciz \"stapsdt\"",
            "992: .balign 4",
            "993: .8byte 990b",
            ".8byte _.stapsdt.base",
            ".8byte {sem}",
            ".asciz \"stockpile\"",
            ".asciz \"progress\"",
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
            in(reg) id,
            in(reg) step,
            sem = sym stockpile_progress_semaphore,
            options(att_syntax, nostack, preserves_flags),
        );
    }
}

"""The BPF C source. Its text depends on numbers only (how many sites), never on a name,
glob or path a user typed: what each site copies comes from the `sites` map at run time."""

from __future__ import annotations

import ctypes as ct

from ..plan import MAX_PIECES

RINGBUF_PAGES = 4096  # 16 MiB: the common case loses no event

_TEMPLATE = r"""
#include <uapi/linux/ptrace.h>

#define MAX_PIECES @MAX_PIECES@

struct piece {
    s64 offset;
    u32 reg;
    u32 size;      /* bytes, at most 8 */
    u32 memory;    /* 1: read memory at reg + offset; 0: the register itself */
    u32 pad;
};

struct site {
    s64 cfa_offset;
    u32 cfa_reg;
    u32 npieces;
    u32 record;    /* 0: count only, send no event */
    u32 pad;
    struct piece pieces[MAX_PIECES];
};

struct event {
    u64 ts;
    u64 cfa;
    u32 tid;
    u32 site;
    u64 words[MAX_PIECES];
};

BPF_ARRAY(sites, struct site, @NSITES@);
BPF_PERCPU_ARRAY(counts, u64, @NSITES@);
BPF_PERCPU_ARRAY(lost, u64, 1);
BPF_RINGBUF_OUTPUT(events, @PAGES@);

#define NREGS 18
#define DWARF_RFLAGS 49

/* DWARF register numbering: rax rdx rcx rbx rsi rdi rbp rsp r8-r15 rip, then RFLAGS
 * (DWARF 49) in slot 17, for conditional tail calls. Loaded one field at a time: the
 * verifier refuses loads through a computed context pointer. */
static __always_inline void load_regs(struct pt_regs *ctx, u64 *r) {
    r[0] = ctx->ax; r[1] = ctx->dx; r[2] = ctx->cx; r[3] = ctx->bx;
    r[4] = ctx->si; r[5] = ctx->di; r[6] = ctx->bp; r[7] = ctx->sp;
    r[8] = ctx->r8; r[9] = ctx->r9; r[10] = ctx->r10; r[11] = ctx->r11;
    r[12] = ctx->r12; r[13] = ctx->r13; r[14] = ctx->r14; r[15] = ctx->r15;
    r[16] = ctx->ip; r[17] = ctx->flags;
}

static __always_inline u64 reg_value(u64 *r, u32 reg) {
    if (reg == DWARF_RFLAGS)
        return r[17];
    return reg < 17 ? r[reg] : 0;
}

static __always_inline int on_hit(struct pt_regs *ctx, u32 index) {
    u64 *count = counts.lookup(&index);
    if (count)
        *count += 1;
    struct site *s = sites.lookup(&index);
    if (!s || !s->record)
        return 0;
    struct event *e = events.ringbuf_reserve(sizeof(struct event));
    if (!e) {
        u32 zero = 0;
        u64 *missed = lost.lookup(&zero);
        if (missed)
            *missed += 1;
        return 0;
    }
    e->ts = bpf_ktime_get_ns();
    e->tid = (u32)bpf_get_current_pid_tgid();
    e->site = index;
    u64 regs[NREGS];
    load_regs(ctx, regs);
    e->cfa = reg_value(regs, s->cfa_reg) + s->cfa_offset;
    u32 n = s->npieces;
#pragma unroll
    for (int i = 0; i < MAX_PIECES; i++) {
        u64 word = 0;
        if (i < n) {
            u64 value = reg_value(regs, s->pieces[i].reg);
            if (s->pieces[i].memory) {
                u32 size = s->pieces[i].size;
                if (size > 8)
                    size = 8;
                bpf_probe_read_user(&word, size, (void *)(value + s->pieces[i].offset));
            } else {
                word = value;
            }
        }
        e->words[i] = word;
    }
    events.ringbuf_submit(e, 0);
    return 0;
}

/* One program for every site, attached through uprobe_multi links (Linux 6.6+): the
 * link gives each address a cookie, the site's index. */
int site_any(struct pt_regs *ctx) {
    return on_hit(ctx, (u32)bpf_get_attach_cookie(ctx));
}
"""

_WRAPPER = "int site_{0}(struct pt_regs *ctx) {{ return on_hit(ctx, {0}); }}\n"
ANY_SITE = "site_any"  # the function uprobe_multi links attach


def capacity(sites: int) -> int:
    """Programs are built for a power-of-two number of sites, so one compiled shape serves
    every plan up to that size."""
    size = 8
    while size < sites:
        size *= 2
    return size


def source(sites: int) -> str:
    """The C source of a program with room for `sites` sites (an int, nothing else)."""
    if not isinstance(sites, int) or sites < 1:
        raise ValueError(f"sites must be a positive int, got {sites!r}")
    text = (
        _TEMPLATE.replace("@MAX_PIECES@", str(MAX_PIECES))
        .replace("@NSITES@", str(sites))
        .replace("@PAGES@", str(RINGBUF_PAGES))
    )
    return text + "".join(_WRAPPER.format(i) for i in range(sites))


def function_name(site: int) -> str:
    return f"site_{site}"


class CPiece(ct.Structure):
    _fields_ = [
        ("offset", ct.c_int64),
        ("reg", ct.c_uint32),
        ("size", ct.c_uint32),
        ("memory", ct.c_uint32),
        ("pad", ct.c_uint32),
    ]


class CSite(ct.Structure):
    _fields_ = [
        ("cfa_offset", ct.c_int64),
        ("cfa_reg", ct.c_uint32),
        ("npieces", ct.c_uint32),
        ("record", ct.c_uint32),
        ("pad", ct.c_uint32),
        ("pieces", CPiece * MAX_PIECES),
    ]


class CEvent(ct.Structure):
    _fields_ = [
        ("ts", ct.c_uint64),
        ("cfa", ct.c_uint64),
        ("tid", ct.c_uint32),
        ("site", ct.c_uint32),
        ("words", ct.c_uint64 * MAX_PIECES),
    ]

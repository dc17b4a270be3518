"""The BPF C source. Its text depends on numbers only (how many sites), never on a name,
glob or path a user typed: what each site copies comes from the `sites` map at run time."""

from __future__ import annotations

import ctypes as ct
from typing import Any

from ..decode import DATA, MAX_COPY, START_LIMIT, TABLE
from ..plan import AREA, MAX_DEREFS, MAX_PIECES, Site
from ..rawevents import EVENT as EVENT  # `struct event` below, as Python reads it

RINGBUF_PAGES = 4096  # 16 MiB: the common case loses no event

_TEMPLATE = r"""
#include <uapi/linux/ptrace.h>

#define MAX_PIECES @MAX_PIECES@
#define AREA @AREA@          /* a big event's bytes: the words, the table, then copies */
#define MAX_COPY @MAX_COPY@  /* one copy's bytes at most */
#define START_LIMIT @START_LIMIT@  /* every copy starts below it: START_LIMIT + MAX_COPY = AREA */
#define MAX_DEREFS @MAX_DEREFS@
#define TABLE @TABLE@        /* u32 per deref: offset | bytes << 16, or one of these: */
#define NOT_RUN 0
#define FULL 0xfffffffe
#define FAILED 0xffffffff
#define DATA @DATA@          /* where copies land at the latest (a site's first lands after its
                              * own table entries) */
#define NO_SLOT 0xffffffff
#define NOWHERE 0xffffffff

/* Copy from memory at the u64 address at addr_at (+ add): `size` bytes, or count * scale
 * (at most `size`) with the count the u64 at len_at. Only when guard_at is NO_SLOT or the
 * u64 at guard_at exceeds guard_min. addr_at, len_at and guard_at are references: offset |
 * source << 16, source 0 the area itself, source k + 1 the bytes deref k copied. Each copy
 * lands after the one before, taking the bytes it copied (dst is unused). */
struct deref {
    s64 add;
    u32 addr_at;
    u32 size;
    u32 dst;
    u32 len_at;
    u32 scale;
    u32 guard_at;
    u64 guard_min;
    u32 flags;     /* BELOW: copy the bytes ending at the address, placed to end where the
                    * copy's room ends; PLUS_ONE: the count is the u64 at len_at plus one */
    u32 pad;
};
#define BELOW 1
#define PLUS_ONE 2

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
    u32 nderefs;   /* > 0: send a big event */
    struct piece pieces[MAX_PIECES];
    struct deref derefs[MAX_DEREFS];
    u32 save_reg;  /* entry: 1 + the register (32 + a word) to save for the return (0: none) */
    u32 load_word; /* return: 1 + the word that gets the register saved at entry (0: none) */
};

struct event {
    u64 ts;
    u64 cfa;
    u32 tid;
    u32 site;
    u32 failed;    /* bit i: deref i could not read its memory */
    u32 pad;
    u64 words[MAX_PIECES];
};

struct big_event {
    u64 ts;
    u64 cfa;
    u32 tid;
    u32 site;
    u32 failed;
    u32 pad;
    u8 area[AREA]; /* starts with the words */
};
#define HEADER 32      /* the bytes of big_event before its area */

BPF_ARRAY(sites, struct site, @NSITES@);
BPF_PERCPU_ARRAY(counts, u64, @NSITES@);
BPF_PERCPU_ARRAY(lost, u64, 1);
BPF_RINGBUF_OUTPUT(events, @PAGES@);
/* A big event is built here, then sent with the bytes its copies took (bpf_ringbuf_output
 * takes a run-time size; a reservation does not). */
BPF_PERCPU_ARRAY(scratch, struct big_event, 1);

/* A hidden return pointer (rdi at the entry), kept until the frame's return. */
struct frame_key {
    u64 cfa;
    u32 tid;
    u32 pad;
};
BPF_TABLE("lru_hash", struct frame_key, u64, saved, 65536);

/* follow_children: count only processes in `tgids` (the traced one and every process it
 * and its descendants fork), filled by the sched_process_fork raw tracepoint. The offsets
 * of task_struct's pid and tgid come from the running kernel's BTF, at run time. */
struct follow_config {
    u32 on;
    u32 pid_offset;
    u32 tgid_offset;
    u32 pad;
};
BPF_ARRAY(follow, struct follow_config, 1);
BPF_HASH(tgids, u32, u8, 16384);

/* The run in progress: a hit counts only while its gate is open, and only in the run's
 * process (ANY_PROCESS: in a process of `tgids`, for follow_children). Closed (0) when the
 * run ends, so the links of a finished run, which close in the background, count nothing
 * even if the kernel gives the dead process's pid to another one. */
#define ANY_PROCESS 0xffffffff
BPF_ARRAY(gate, u32, 1);

/* The run in progress, numbered: a uprobe_multi link's cookies carry the number of the run
 * that made it (high 32 bits). A process forked while a link was open (a background thread
 * starting a subprocess, multiprocessing) holds its fd, so closing ours may leave it
 * attached for as long as that process lives: its hits must count in no later run. */
BPF_ARRAY(generation, u32, 1);

static __always_inline struct follow_config *following(void) {
    u32 zero = 0;
    struct follow_config *config = follow.lookup(&zero);
    return config && config->on ? config : 0;
}

static __always_inline void task_ids(struct follow_config *config, u64 task, u32 *pid, u32 *tgid) {
    bpf_probe_read_kernel(pid, sizeof(*pid), (void *)(task + config->pid_offset));
    bpf_probe_read_kernel(tgid, sizeof(*tgid), (void *)(task + config->tgid_offset));
}

int follow_fork(struct bpf_raw_tracepoint_args *ctx) {
    struct follow_config *config = following();
    if (!config)
        return 0;
    u32 parent = bpf_get_current_pid_tgid() >> 32;
    if (!tgids.lookup(&parent))
        return 0;
    u32 pid = 0, tgid = 0;
    task_ids(config, ctx->args[1], &pid, &tgid);
    if (pid == 0 || pid != tgid)
        return 0;  /* a new thread: its process is followed already */
    u8 one = 1;
    tgids.update(&pid, &one);
    return 0;
}

int follow_free(struct bpf_raw_tracepoint_args *ctx) {
    struct follow_config *config = following();
    if (!config)
        return 0;
    u32 pid = 0, tgid = 0;
    task_ids(config, ctx->args[0], &pid, &tgid);
    if (pid == tgid)
        tgids.delete(&pid);  /* its pid may be reused by a process we must not count */
    return 0;
}

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

/* The area offset of the 8 bytes a reference names, or NOWHERE (its copy did not run, or
 * copied fewer bytes). */
static __always_inline u32 resolve(struct big_event *b, u32 ref) {
    u32 source = (ref >> 16) & 0xff;
    u32 at = ref & 0xffff;
    if (source) {
        u32 entry = *(u32 *)&b->area[TABLE + 4 * ((source - 1) & (MAX_DEREFS - 1))];
        if (entry == NOT_RUN || entry >= FULL || at + 8 > (entry >> 16))
            return NOWHERE;
        at += entry & 0xffff;
    }
    return at > AREA - 8 ? NOWHERE : at;
}

/* One deref, landing at the cursor (b->pad while the copies run; kept in the map value, not
 * a register, so the verifier does not follow its every value through the loop); returns
 * its table entry. */
static __always_inline u32 copy_one(struct big_event *b, struct deref *d) {
    u32 at;
    if (d->guard_at != NO_SLOT) {
        at = resolve(b, d->guard_at);
        if (at > AREA - 8 || *(u64 *)&b->area[at] <= d->guard_min)
            return NOT_RUN;
    }
    at = resolve(b, d->addr_at);
    if (at > AREA - 8)
        return NOT_RUN;
    u64 address = *(u64 *)&b->area[at] + d->add;
    u64 len = d->size;
    if (d->len_at != NO_SLOT) {
        at = resolve(b, d->len_at);
        if (at > AREA - 8)
            return NOT_RUN;
        u64 count = *(u64 *)&b->area[at];
        if (d->flags & PLUS_ONE)
            count += 1;
        if (count < len)
            len = count;
        len *= d->scale;
        if (len > d->size)
            len = d->size;
    }
    if (len > MAX_COPY)
        len = MAX_COPY;
    if (len == 0)
        return NOT_RUN;
    u64 extent = len;
    u64 cursor = b->pad;
    if (cursor >= START_LIMIT)
        return FULL;
    u64 dst = cursor;
    if (d->flags & BELOW) {  /* the bytes below the address, ending where its room ends */
        extent = d->size > MAX_COPY ? MAX_COPY : d->size;
        if (len > extent)
            return FULL;
        address -= len;
        dst += extent - len;
    }
    if (dst >= START_LIMIT)
        return FULL;
    /* The read gets the checked registers, as the verifier needs (not copies made before). */
    asm volatile("" : "+r"(dst), "+r"(len));
    if (bpf_probe_read_user(&b->area[dst], len, (void *)address) < 0)
        return FAILED;
    b->pad = (cursor + extent + 7) & ~7ull;
    return (u32)(cursor | (extent << 16));
}

/* Every deref of the site, in order; returns the bytes of the area in use. */
static __always_inline u32 copy_behind(struct big_event *b, struct site *s) {
    u32 n = s->nderefs;
    if (n > MAX_DEREFS)
        n = MAX_DEREFS;
    b->pad = TABLE + ((4 * n + 7) & ~7u);  /* the table has an entry per deref of the site */
    /* A real loop (the verifier bounds it), not unrolled: unrolled, every site function
     * would carry MAX_DEREFS copies of the body and the compile would take minutes. */
#pragma clang loop unroll(disable)
    for (int i = 0; i < MAX_DEREFS; i++) {
        if (i < n)
            *(u32 *)&b->area[TABLE + 4 * i] = copy_one(b, &s->derefs[i]);
    }
    u32 used = b->pad;
    b->failed = 0;
    b->pad = 0;
    return used > AREA ? AREA : used;
}

static __always_inline int on_hit(struct pt_regs *ctx, u32 index) {
    u32 zero = 0;
    u32 *open = gate.lookup(&zero);
    if (!open || *open == 0)
        return 0;
    u32 tgid = bpf_get_current_pid_tgid() >> 32;
    if (*open == ANY_PROCESS) {
        if (!tgids.lookup(&tgid))
            return 0;
    } else if (*open != tgid) {
        return 0;
    }
    u64 *count = counts.lookup(&index);
    if (count)
        *count += 1;
    struct site *s = sites.lookup(&index);
    if (!s || !s->record)
        return 0;
    struct event *e;
    struct big_event *big = 0;
    if (s->nderefs) {
        big = scratch.lookup(&zero);
        e = (struct event *)big;
    } else {
        e = events.ringbuf_reserve(sizeof(struct event));
    }
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
    e->failed = 0;
    e->pad = 0;
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
    if (s->save_reg || s->load_word) {
        struct frame_key key = {};
        key.cfa = e->cfa;
        key.tid = e->tid;
        if (s->save_reg) {
            u32 r = s->save_reg - 1;  /* a general-purpose register, or 32 + a word */
            u64 value = r >= 32 ? e->words[(r - 32) & (MAX_PIECES - 1)] : regs[r & 15];
            saved.update(&key, &value);
        }
        if (s->load_word) {
            u32 w = (s->load_word - 1) & (MAX_PIECES - 1);  /* MAX_PIECES: a power of 2 */
            u64 *value = saved.lookup(&key);
            e->words[w] = value ? *value : 0;
            if (value)
                saved.delete(&key);
        }
    }
    if (!big) {
        events.ringbuf_submit(e, 0);
        return 0;
    }
    u64 size = HEADER + copy_behind(big, s);
    if (size > sizeof(struct big_event))
        size = sizeof(struct big_event);
    asm volatile("" : "+r"(size));  /* the call gets the clamped register, as the verifier needs */
    if (events.ringbuf_output(big, size, 0) < 0) {
        u64 *missed = lost.lookup(&zero);
        if (missed)
            *missed += 1;
    }
    return 0;
}

/* One program for every site, attached through uprobe_multi links (Linux 6.6+): the
 * link gives each address a cookie: the site's index, and the run's number above it. */
int site_any(struct pt_regs *ctx) {
    u64 cookie = bpf_get_attach_cookie(ctx);
    u32 zero = 0;
    u32 *run = generation.lookup(&zero);
    if (!run || *run != (u32)(cookie >> 32))
        return 0;
    return on_hit(ctx, (u32)cookie);
}

/* At the target's entry point, once: stop it (SIGSTOP), so probes whose USDT semaphore the
 * kernel must find in the process's final mappings attach before its code runs. */
int stop_at_entry(struct pt_regs *ctx) {
    bpf_send_signal(19);
    return 0;
}
"""

_WRAPPER = "int site_{0}(struct pt_regs *ctx) {{ return on_hit(ctx, {0}); }}\n"
ANY_SITE = "site_any"  # the function uprobe_multi links attach
FOLLOW_FORK, FOLLOW_FREE = "follow_fork", "follow_free"  # raw tracepoint programs
STOP_AT_ENTRY = "stop_at_entry"  # see session.Session.started
GATE_CLOSED, ANY_PROCESS = 0, 0xFFFFFFFF  # the `gate` map's value (else: the run's pid)


def capacity(sites: int) -> int:
    """Programs are built for a power-of-two number of sites, so one compiled shape serves
    every plan up to that size."""
    size = 8
    while size < sites:
        size *= 2
    return size


def source(sites: int, per_site_functions: bool = True) -> str:
    """The C source of a program with room for `sites` sites (an int, nothing else).

    `per_site_functions`: also one wrapper per site, for kernels without uprobe_multi links
    (before 6.6). Each wrapper inlines the whole handler, so leaving them out where links
    serve cuts the compile time of large shapes by an order of magnitude.
    """
    if not isinstance(sites, int) or sites < 1:
        raise ValueError(f"sites must be a positive int, got {sites!r}")
    text = (
        _TEMPLATE.replace("@MAX_PIECES@", str(MAX_PIECES))
        .replace("@AREA@", str(AREA))
        .replace("@MAX_DEREFS@", str(MAX_DEREFS))
        .replace("@MAX_COPY@", str(MAX_COPY))
        .replace("@START_LIMIT@", str(START_LIMIT))
        .replace("@TABLE@", str(TABLE))
        .replace("@DATA@", str(DATA))
        .replace("@NSITES@", str(sites))
        .replace("@PAGES@", str(RINGBUF_PAGES))
    )
    if not per_site_functions:
        return text
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


class CDeref(ct.Structure):
    _fields_ = [
        ("add", ct.c_int64),
        ("addr_at", ct.c_uint32),
        ("size", ct.c_uint32),
        ("dst", ct.c_uint32),
        ("len_at", ct.c_uint32),
        ("scale", ct.c_uint32),
        ("guard_at", ct.c_uint32),
        ("guard_min", ct.c_uint64),
        ("flags", ct.c_uint32),
        ("pad", ct.c_uint32),
    ]


class CSite(ct.Structure):
    _fields_ = [
        ("cfa_offset", ct.c_int64),
        ("cfa_reg", ct.c_uint32),
        ("npieces", ct.c_uint32),
        ("record", ct.c_uint32),
        ("nderefs", ct.c_uint32),
        ("pieces", CPiece * MAX_PIECES),
        ("derefs", CDeref * MAX_DEREFS),
        ("save_reg", ct.c_uint32),
        ("load_word", ct.c_uint32),
    ]


class CFollow(ct.Structure):
    _fields_ = [
        ("on", ct.c_uint32),
        ("pid_offset", ct.c_uint32),
        ("tgid_offset", ct.c_uint32),
        ("pad", ct.c_uint32),
    ]


def fill_site(entry: Any, site: Site, record: bool) -> None:
    """Write `site` into a site-table entry: a CSite here, or the in-process engine's
    mirror of it (the same fields)."""
    entry.cfa_reg = site.cfa.reg
    entry.cfa_offset = site.cfa.offset
    entry.npieces = len(site.pieces)
    entry.record = int(record)
    for i, piece in enumerate(site.pieces):
        entry.pieces[i].reg = piece.reg
        entry.pieces[i].offset = piece.offset
        entry.pieces[i].size = piece.size
        entry.pieces[i].memory = int(piece.memory)
    entry.save_reg = 0 if site.save_reg is None else site.save_reg + 1
    entry.load_word = 0 if site.load_word is None else site.load_word + 1
    entry.nderefs = len(site.derefs)
    for i, deref in enumerate(site.derefs):
        for name, *_ in entry.derefs[i]._fields_:
            setattr(entry.derefs[i], name, getattr(deref, name))

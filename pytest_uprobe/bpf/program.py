"""The BPF C source. Its text depends on numbers only (how many sites), never on a name,
glob or path a user typed: what each site copies comes from the `sites` map at run time."""

from __future__ import annotations

import ctypes as ct
import os
from pathlib import Path
from typing import Any

from ..decode import DATA, MAX_COPY, START_LIMIT, TABLE
from ..errors import UsageError
from ..plan import AREA, MAX_DEREFS, MAX_PIECES, ProbePlan, Site
from ..rawevents import EVENT as EVENT  # `struct event` below, as Python reads it

RINGBUF_PAGES = 4096  # 16 MiB: the common case loses no event
DEREF_ENTRIES = 1 << 20  # derefs of every site together (the map allocates only those used)

_TEMPLATE = r"""
#include <uapi/linux/ptrace.h>

#define MAX_PIECES @MAX_PIECES@
#define AREA @AREA@          /* a big event's bytes: the words, the table, then copies */
#define MAX_COPY @MAX_COPY@  /* one copy's bytes at most */
#define START_LIMIT @START_LIMIT@  /* every copy starts below it: START_LIMIT + MAX_COPY = AREA */
#define MAX_DEREFS @MAX_DEREFS@
#define STEP @STEP@          /* derefs one program runs (see copy_more) */
#define STOPPED 0x80000000   /* event.failed: the copies stopped early (the derefs run) */
#define TABLE @TABLE@        /* u32 per deref: offset / 8 | bytes << 19, or one of these: */
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
    u32 skip;      /* a chunk of a counted copy: the elements the chunks before it copy */
};
#define BUCKET 0xffffffffffffffffull  /* guard_min: the byte at guard_at has its top bit clear */
/* guard_min SHORT | n: the u16 at guard_at is above n (a B-tree node's len) */
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
    u32 nderefs;   /* > 0: send a big event; its derefs are in `derefs`, at MAX_DEREFS * site + i */
    struct piece pieces[MAX_PIECES];
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
/* A big event is built here, one per CPU (larger than a per-CPU map value may be), then
 * sent with the bytes its copies took (bpf_ringbuf_output takes a run-time size; a
 * reservation does not). */
BPF_ARRAY(scratch, struct big_event, @NCPUS@);
/* Each site's derefs, by MAX_DEREFS * site + i: only the sites that copy take room. */
BPF_F_TABLE("hash", u32, struct deref, derefs, @DEREF_ENTRIES@, BPF_F_NO_PREALLOC);

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
static __always_inline u32 resolve_n(struct big_event *b, u32 ref, u32 need) {
    u32 source = ref >> 16;
    u32 at = ref & 0xffff;
    if (source) {
        u32 entry = *(u32 *)&b->area[TABLE + 4 * ((source - 1) & (MAX_DEREFS - 1))];
        if (entry == NOT_RUN || entry >= FULL || at + need > (entry >> 19))
            return NOWHERE;
        at += (entry & 0x7ffff) << 3;
    }
    return at > AREA - 8 ? NOWHERE : at;
}
#define resolve(b, ref) resolve_n(b, ref, 8)

/* One deref, landing at the cursor (b->pad while the copies run; kept in the map value, not
 * a register, so the verifier does not follow its every value through the loop); returns
 * its table entry. */
static __always_inline u32 copy_one(struct big_event *b, struct deref *d) {
    u32 at;
    if (d->guard_at != NO_SLOT && d->guard_min == BUCKET) {
        at = resolve_n(b, d->guard_at, 1);
        if (at > AREA - 8 || (b->area[at] & 0x80))
            return NOT_RUN;
    } else if (d->guard_at != NO_SLOT && (d->guard_min >> 62) == 1) {
        at = resolve_n(b, d->guard_at, 2);
        if (at > AREA - 8 || *(u16 *)&b->area[at] <= (d->guard_min & 0xffff))
            return NOT_RUN;
    } else if (d->guard_at != NO_SLOT) {
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
        if (count <= d->skip)
            return NOT_RUN;
        count -= d->skip;
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
    return (u32)((cursor >> 3) | (extent << 19));
}

/* Where a site's copies stand between the programs that run them (see copy_and_send). */
struct copying {
    u32 site;
    u32 next;   /* the first deref not run yet */
    u32 n;      /* the site's derefs */
    u32 pad;
};
BPF_PERCPU_ARRAY(copying, struct copying, 1);
/* copy_more, which runs the next STEP derefs: a tail call starts it with a fresh verifier
 * budget (a loop of more than STEP iterations leaves more branches pending than the
 * verifier keeps). Up to 33 tail calls: 34 x STEP derefs, more than MAX_DEREFS. */
BPF_PROG_ARRAY(more_copies, 1);

/* Derefs [from, from + STEP) of the site; returns whether more remain. A real loop (the
 * verifier bounds it), not unrolled: unrolled, every site function would carry STEP copies
 * of the body. (No bpf_loop: BCC 0.26 does not relocate its callback.) */
static __always_inline int copy_some(struct big_event *b, u32 index, u32 from, u32 n) {
    u32 first = index * MAX_DEREFS;
#pragma clang loop unroll(disable)
    for (u32 k = 0; k < STEP; k++) {
        u32 i = from + k;
        if (i >= n)
            return 0;
        u32 key = first + i;
        struct deref *d = derefs.lookup(&key);
        *(u32 *)&b->area[TABLE + 4 * (i & (MAX_DEREFS - 1))] = d ? copy_one(b, d) : NOT_RUN;
    }
    return from + STEP < n;
}

/* Run the site's derefs from `from` on, then send the event: when more than STEP remain,
 * a tail call to copy_more goes on (it does not return); when that fails, the event goes
 * with `failed` saying where the copies stopped (STOPPED | the derefs run). */
static __always_inline int copy_and_send(struct pt_regs *ctx, struct big_event *b, u32 index,
                                         u32 from, u32 n) {
    u32 zero = 0;
    if (copy_some(b, index, from, n)) {
        struct copying *c = copying.lookup(&zero);
        if (c) {
            c->site = index;
            c->next = from + STEP;
            c->n = n;
            more_copies.call(ctx, 0);
        }
        b->failed = STOPPED | (from + STEP);
    }
    u64 size = HEADER + (b->pad > AREA ? AREA : b->pad);
    b->pad = 0;
    if (size > sizeof(struct big_event))
        size = sizeof(struct big_event);
    asm volatile("" : "+r"(size));  /* the call gets the clamped register, as the verifier needs */
    if (events.ringbuf_output(b, size, 0) < 0) {
        u64 *missed = lost.lookup(&zero);
        if (missed)
            *missed += 1;
    }
    return 0;
}

int copy_more(struct pt_regs *ctx) {
    u32 zero = 0;
    struct copying *c = copying.lookup(&zero);
    u32 cpu = bpf_get_smp_processor_id();
    struct big_event *b = scratch.lookup(&cpu);
    if (!c || !b)
        return 0;
    u32 n = c->n > MAX_DEREFS ? MAX_DEREFS : c->n;
    return copy_and_send(ctx, b, c->site, c->next, n);
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
    u32 cpu = bpf_get_smp_processor_id();
    if (s->nderefs) {
        big = scratch.lookup(&cpu);
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
    u32 nderefs = s->nderefs > MAX_DEREFS ? MAX_DEREFS : s->nderefs;
    big->pad = TABLE + ((4 * nderefs + 7) & ~7u);  /* the table: an entry per deref of the site */
    return copy_and_send(ctx, big, index, 0, nderefs);
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
COPY_MORE = "copy_more"  # the tail call that runs a site's derefs past the first STEP
STEP = 256  # derefs one program runs: more leave the verifier too many branches pending
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
        .replace("@STEP@", str(STEP))
        .replace("@MAX_COPY@", str(MAX_COPY))
        .replace("@START_LIMIT@", str(START_LIMIT))
        .replace("@TABLE@", str(TABLE))
        .replace("@DATA@", str(DATA))
        .replace("@NSITES@", str(sites))
        .replace("@NCPUS@", str(possible_cpus()))
        .replace("@DEREF_ENTRIES@", str(DEREF_ENTRIES))
        .replace("@PAGES@", str(RINGBUF_PAGES))
    )
    if not per_site_functions:
        return text
    return text + "".join(_WRAPPER.format(i) for i in range(sites))


def possible_cpus() -> int:
    """How many CPUs the kernel may number (/sys/devices/system/cpu/possible: `0-3,8`):
    the big events' scratch has one slot per CPU."""
    try:
        text = Path("/sys/devices/system/cpu/possible").read_text().strip()
    except OSError:
        return os.cpu_count() or 1
    last = max(int(part.split("-")[-1]) for part in text.split(","))
    return last + 1


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
        ("skip", ct.c_uint32),
    ]


class CSite(ct.Structure):
    _fields_ = [
        ("cfa_offset", ct.c_int64),
        ("cfa_reg", ct.c_uint32),
        ("npieces", ct.c_uint32),
        ("record", ct.c_uint32),
        ("nderefs", ct.c_uint32),
        ("pieces", CPiece * MAX_PIECES),
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
    entry.nderefs = min(len(site.derefs), MAX_DEREFS)
    if hasattr(entry, "derefs"):  # the in-process engine's mirror keeps them in the entry
        room = len(entry.derefs)
        entry.nderefs = min(len(site.derefs), room)
        entry.pad = int(len(site.derefs) > room)  # the agent says where its copies stopped
        for i, deref in enumerate(site.derefs[:room]):
            fill_deref(entry.derefs[i], deref)


def fill_deref(entry: Any, deref: Any) -> None:
    for name, *_ in entry._fields_:
        setattr(entry, name, getattr(deref, name))


def check_deref_room(plan: ProbePlan) -> None:
    """Refuse a plan whose copies from behind pointers do not fit the `derefs` map together
    (about 256 sites at the full budget): an insert past its size would fail mid-set-up."""
    used = [min(len(site.derefs), MAX_DEREFS) for site in plan.sites]
    if sum(used) <= DEREF_ENTRIES:
        return
    per_function: dict[str, int] = {}
    for site, count in zip(plan.sites, used):
        name = plan.function(site.function).symbol.path
        per_function[name] = per_function.get(name, 0) + count
    largest = sorted(per_function.items(), key=lambda item: -item[1])[:5]
    named = ", ".join(f"{name} ({count:,})" for name, count in largest)
    raise UsageError(
        f"the probes' values need {sum(used):,} copies from behind pointers in one run, more "
        f"than the BPF engine's {DEREF_ENTRIES:,} (the most: {named}): lower "
        "--uprobe-max-elements or --uprobe-max-string, split the probes over several runs, "
        "or count calls only (record=False)"
    )


def fill_derefs(table: Any, sites: Any) -> None:
    """Write every site's derefs into the program's `derefs` map (emptied first)."""
    table.clear()
    for number, site in enumerate(sites):
        for i, deref in enumerate(site.derefs[:MAX_DEREFS]):
            entry = table.Leaf()
            fill_deref(entry, deref)
            table[table.Key(deref_key(number, i))] = entry


def deref_key(site: int, i: int) -> int:
    """Where deref i of site `site` sits in the program's `derefs` map."""
    return site * MAX_DEREFS + i

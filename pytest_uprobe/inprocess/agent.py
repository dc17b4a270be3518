"""What runs inside the traced process: the C callbacks (compiled there by Frida's CModule)
and the few lines of JavaScript that map the shared buffer and attach them, once.

Each hit of a site runs `on_hit` in C only: count the site, and (recording) write the same
event the BPF program writes (ts, cfa, tid, site, failed, pad, words, then a big event's
copies from behind pointers) into a ring in a shared file mapping that the Python side
drains while the program runs. Counters live in the same mapping, so they survive the
process however it ends (exit(), abort(), SIGKILL). The texts depend on numbers only; what
each site copies comes from the site table in the shared mapping.
"""

from __future__ import annotations

import ctypes as ct

from ..bpf.program import CDeref, CPiece
from ..decode import DATA, IN_PROCESS_AREA, IN_PROCESS_DEREFS, MAX_COPY, TABLE
from ..plan import MAX_DEREFS, MAX_PIECES

MAGIC = 0x31_6F_72_70_6E_69_75_70  # "upinpro1"
HEADER_SIZE = 128


class Header(ct.Structure):
    """The start of the shared mapping (the C `struct header` below)."""

    _fields_ = [
        ("magic", ct.c_uint64),
        ("head", ct.c_uint64),  # bytes the target has published
        ("tail", ct.c_uint64),  # bytes the Python side has consumed
        ("lost", ct.c_uint64),  # events dropped: the ring stayed full
        ("capacity", ct.c_uint64),  # ring bytes, a power of two
        ("ring_offset", ct.c_uint64),
        ("sites_offset", ct.c_uint64),
        ("counts_offset", ct.c_uint64),
        ("nsites", ct.c_uint32),
        ("lock", ct.c_uint32),
        ("stalled", ct.c_uint32),  # the ring stayed full past the wait: drop, do not wait
        ("attached", ct.c_uint32),  # set by the agent once every site is attached
        ("in_flight", ct.c_uint64),  # recording hits started minus finished
        ("exit_code", ct.c_uint32),  # the argument of _exit, when exit_how is EXITED
        ("exit_how", ct.c_uint32),  # NOT_YET, EXITED, ABORTING or FAULTED (see below)
        ("closed", ct.c_uint32),  # set once the run is over: processes left count no more
    ]


# How the target ended, as the agent saw it: _exit called (exit_code: its status), abort
# called, or a fault it may have died of (exit_code: the signal).
NOT_YET, EXITED, ABORTING, FAULTED = 0, 1, 2, 3
FAULT_SIGNALS = {
    "abort": 6, "access-violation": 11, "guard-page": 11, "stack-overflow": 11,
    "illegal-instruction": 4, "arithmetic": 8, "breakpoint": 5, "single-step": 5,
}  # fmt: skip


class CSite(ct.Structure):
    """One site's recipe: the BPF side's `struct site`, plus how many bytes its events
    carry (`extent`: the words, or the words and the copies of a big event)."""

    _fields_ = [
        ("cfa_offset", ct.c_int64),
        ("cfa_reg", ct.c_uint32),
        ("npieces", ct.c_uint32),
        ("record", ct.c_uint32),
        ("nderefs", ct.c_uint32),
        ("pieces", CPiece * MAX_PIECES),
        ("derefs", CDeref * IN_PROCESS_DEREFS),
        ("save_reg", ct.c_uint32),
        ("load_word", ct.c_uint32),
        ("extent", ct.c_uint32),
        ("pad", ct.c_uint32),
    ]


SAVED_SLOTS = 8192  # hidden return pointers kept between an entry and its return
RECORD_HEADER = 8  # u32 bytes of the record, u32 kind (0: an event, 1: skip to the ring's start)

C_SOURCE = r"""
#include <gum/guminterceptor.h>

#define MAX_PIECES @MAX_PIECES@
#define AREA @AREA@
#define MAX_COPY @MAX_COPY@         /* as in bpf/program.py: copies land one after another, */
#define START_LIMIT @START_LIMIT@   /* each below START_LIMIT, and the table says where */
#define TABLE @TABLE@
#define DATA @DATA@
#define NOT_RUN 0u
#define FULL 0xfffffffeu
#define FAILED 0xffffffffu
#define NOWHERE 0xffffffffu
#define MAX_DEREFS @MAX_DEREFS@
#define SITE_DEREFS @SITE_DEREFS@
#define STOPPED 0x80000000u
#define NO_SLOT 0xffffffffu
#define WAIT_ROUNDS 20000   /* x 100 us: how long a full ring is waited out before dropping */
#define SAVED_SLOTS @SAVED_SLOTS@

typedef unsigned long long u64;
typedef long long s64;
typedef unsigned int u32;
typedef unsigned char u8;

struct iovec_ { void *base; u64 len; };
extern long process_vm_readv(int pid, const struct iovec_ *local, unsigned long nlocal,
                             const struct iovec_ *remote, unsigned long nremote,
                             unsigned long flags);
extern int clock_gettime(int clock, void *ts);
extern int usleep(unsigned int us);
extern int getpid(void);
extern void *pthread_self(void);
extern int kill(int pid, int sig);
extern int *__errno_location(void);

struct deref { s64 add; u32 addr_at; u32 size; u32 dst; u32 len_at; u32 scale; u32 guard_at;
               u64 guard_min; u32 flags; u32 skip; };
#define BUCKET 0xffffffffffffffffull
#define BELOW 1     /* as in bpf/program.py */
#define PLUS_ONE 2
struct piece { s64 offset; u32 reg; u32 size; u32 memory; u32 pad; };
struct site {
    s64 cfa_offset; u32 cfa_reg; u32 npieces; u32 record; u32 nderefs;
    struct piece pieces[MAX_PIECES];
    struct deref derefs[SITE_DEREFS];
    u32 save_reg; u32 load_word; u32 extent; u32 pad;  /* pad: more derefs than SITE_DEREFS */
};
struct header {
    u64 magic; volatile u64 head; volatile u64 tail; u64 lost; u64 capacity;
    u64 ring_offset; u64 sites_offset; u64 counts_offset;
    u32 nsites; volatile u32 lock; u32 stalled; u32 attached; volatile u64 in_flight;
    volatile u32 exit_code; volatile u32 exit_how; volatile u32 closed;
};
struct event { u64 ts; u64 cfa; u32 tid; u32 site; u32 failed; u32 pad; u64 words[MAX_PIECES]; };
struct saved_slot { u64 cfa; u64 tid; u64 value; u64 used; };

/* A CModule's own data is not writable: the mutable state lives in memory the script
 * allocates (private to this process: a forked child gets its own copy). */
struct state {
    struct header *hdr; struct site *sites; u64 *counts; u8 *ring;
    int self_pid;
    int off;  /* 1 in a forked child: its hits are not the traced process's */
    int tid_offset;  /* where glibc's struct pthread keeps the thread's id; 0: ask Frida */
    int follow;  /* follow_children: forked children keep counting */
    int child;   /* not the process the run started: its exit is not the run's */
};
extern struct state st;
extern struct saved_slot saved[SAVED_SLOTS];
#define hdr st.hdr
#define sites st.sites
#define counts st.counts
#define ring st.ring
#define self_pid st.self_pid
#define off st.off

void attach_buffer(void *base) {
    hdr = (struct header *)base;
    sites = (struct site *)((u8 *)base + hdr->sites_offset);
    counts = (u64 *)((u8 *)base + hdr->counts_offset);
    ring = (u8 *)base + hdr->ring_offset;
    self_pid = getpid();
}

/* A forked child shares the mapping (MAP_SHARED) and inherits the hooks: it counts only
 * when the run follows children, and its own memory is read through its own pid. */
void after_fork_child(void) {
    self_pid = getpid();
    st.child = 1;
    if (!st.follow)
        off = 1;
}

void set_follow(int follow, int child) { st.follow = follow; st.child = child; }

void set_tid_offset(int offset) { st.tid_offset = offset; }

/* The thread's id without a system call per hit (gettid costs about 0.8 us on this VM, and
 * Frida's gum_invocation_context_get_thread_id makes one): glibc keeps it in the thread's
 * struct pthread, whose offset the script finds at set-up (see JS_SOURCE). */
static inline u32 current_tid(GumInvocationContext *ic) {
    if (st.tid_offset)
        return *(u32 *)((u8 *)pthread_self() + st.tid_offset);
    return (u32)gum_invocation_context_get_thread_id(ic);
}

/* The entry half of a leaf's return hook: keep the frame's CFA for the leave. */
void on_leave_enter(GumInvocationContext *ic) {
    u64 *cfa = (u64 *)gum_invocation_context_get_listener_invocation_data(ic, sizeof(u64));
    *cfa = ic->cpu_context->rsp + 8;
}

/* How the process ends, for the Python side when Frida's child watch reaps it first. */
void on_exit_call(GumInvocationContext *ic) {
    if (off || st.child || !hdr)
        return;
    hdr->exit_code = (u32)(gsize)gum_invocation_context_get_nth_argument(ic, 0) & 0xff;
    hdr->exit_how = 1;
}

void on_abort_call(GumInvocationContext *ic) {
    if (off || st.child || !hdr)
        return;
    hdr->exit_how = 2;
}

static inline void add_one(volatile u64 *at) {
    __asm__ __volatile__("lock incq %0" : "+m"(*at) : : "memory");
}

static inline void sub_one(volatile u64 *at) {
    __asm__ __volatile__("lock decq %0" : "+m"(*at) : : "memory");
}

/* The lock holds its holder's pid: with follow_children several processes share it, and
 * one killed while holding it (SIGKILL between take and drop) must not hang the others. */
static inline u32 swap_lock(u32 expected, u32 wanted) {
    __asm__ __volatile__("lock cmpxchgl %2, %1"
                         : "+a"(expected), "+m"(hdr->lock) : "r"(wanted) : "memory");
    return expected;
}

static void take_lock(void) {
    u32 me = (u32)self_pid;
    for (;;) {
        u32 holder = swap_lock(0, me);
        if (!holder)
            return;
        for (u32 spins = 0; hdr->lock == holder; spins++) {
            __asm__ __volatile__("pause" : : : "memory");
            if (spins == (1u << 22)) {
                spins = 0;
                if (holder != me && kill((int)holder, 0) < 0 && *__errno_location() == 3)
                    swap_lock(holder, 0);  /* ESRCH: its holder is gone */
            }
        }
    }
}

static inline void drop_lock(void) {
    __asm__ __volatile__("" : : : "memory");
    hdr->lock = 0;
}

static u64 reg_value(GumCpuContext *c, u32 reg) {
    switch (reg) {
    case 0: return c->rax;  case 1: return c->rdx;  case 2: return c->rcx;
    case 3: return c->rbx;  case 4: return c->rsi;  case 5: return c->rdi;
    case 6: return c->rbp;  case 7: return c->rsp;  case 8: return c->r8;
    case 9: return c->r9;   case 10: return c->r10; case 11: return c->r11;
    case 12: return c->r12; case 13: return c->r13; case 14: return c->r14;
    case 15: return c->r15; case 16: return c->rip;
    }
    if (reg >= 17 && reg <= 32)
        return *(u64 *)&c->xmm[reg - 17];
    if (reg == 49)  /* RFLAGS: Frida's trampoline pushes them right above the context */
        return *(u64 *)(c + 1);
    return 0;
}

/* Memory that may not be mapped: read through the kernel, which fails instead of faulting
 * (the in-process twin of bpf_probe_read_user). */
static int safe_read(void *dst, u64 address, u64 len) {
    struct iovec_ local, remote;
    local.base = dst; local.len = len;
    remote.base = (void *)address; remote.len = len;
    return process_vm_readv(self_pid, &local, 1, &remote, 1, 0) == (long)len ? 0 : -1;
}

static u32 resolve_n(u8 *area, u32 ref, u32 need) {
    u32 source = ref >> 16, at = ref & 0xffff;
    if (source) {
        u32 entry = *(u32 *)&area[TABLE + 4 * ((source - 1) & (MAX_DEREFS - 1))];
        if (entry == NOT_RUN || entry >= FULL || at + need > (entry >> 19)) return NOWHERE;
        at += (entry & 0x7ffff) << 3;
    }
    return at > AREA - 8 ? NOWHERE : at;
}
#define resolve(area, ref) resolve_n(area, ref, 8)

/* One deref, landing at *cursor (moved past what it copied); returns its table entry. */
static u32 copy_one(u8 *area, struct deref *d, u32 *cursor) {
    u32 at;
    if (d->guard_at != NO_SLOT && d->guard_min == BUCKET) {
        at = resolve_n(area, d->guard_at, 1);
        if (at == NOWHERE || (area[at] & 0x80)) return NOT_RUN;
    } else if (d->guard_at != NO_SLOT && (d->guard_min >> 62) == 1) {
        at = resolve_n(area, d->guard_at, 2);
        if (at == NOWHERE || *(unsigned short *)&area[at] <= (d->guard_min & 0xffff))
            return NOT_RUN;
    } else if (d->guard_at != NO_SLOT) {
        at = resolve(area, d->guard_at);
        if (at == NOWHERE || *(u64 *)&area[at] <= d->guard_min) return NOT_RUN;
    }
    at = resolve(area, d->addr_at);
    if (at == NOWHERE) return NOT_RUN;
    u64 address = *(u64 *)&area[at] + d->add;
    u64 len = d->size;
    if (d->len_at != NO_SLOT) {
        at = resolve(area, d->len_at);
        if (at == NOWHERE) return NOT_RUN;
        u64 count = *(u64 *)&area[at];
        if (d->flags & PLUS_ONE) count += 1;
        if (count <= d->skip) return NOT_RUN;
        count -= d->skip;
        if (count < len) len = count;
        len *= d->scale;
        if (len > d->size) len = d->size;
    }
    if (len > MAX_COPY) len = MAX_COPY;
    if (len == 0) return NOT_RUN;
    u64 extent = len, dst = *cursor;
    if (dst >= START_LIMIT) return FULL;
    if (d->flags & BELOW) {
        extent = d->size > MAX_COPY ? MAX_COPY : d->size;
        if (len > extent) return FULL;
        address -= len;
        dst += extent - len;
    }
    if (dst >= START_LIMIT) return FULL;
    if (safe_read(&area[dst], address, len) < 0) return FAILED;
    u32 placed = (*cursor >> 3) | (u32)(extent << 19);
    *cursor = (u32)((*cursor + extent + 7) & ~7ull);
    return placed;
}

static struct saved_slot *saved_slot(u64 cfa, u64 tid, int create) {
    u64 h = (cfa * 0x9E3779B97F4A7C15ull) ^ tid;
    for (u32 i = 0; i < 64; i++) {
        struct saved_slot *s = &saved[(h + i) & (SAVED_SLOTS - 1)];
        if (s->used == 1 && s->cfa == cfa && s->tid == tid) return s;
        if (create && s->used != 1) return s;
        if (!create && s->used == 0) return 0;
    }
    return 0;
}

/* Room for `need` bytes at the ring's head (the lock held); 0: the event is dropped. */
static u8 *reserve(u32 need) {
    u64 cap = hdr->capacity;
    u64 pos = hdr->head & (cap - 1);
    u64 skip = cap - pos < need ? cap - pos : 0;
    u32 rounds = 0;
    while (hdr->head + skip + need - hdr->tail > cap) {
        if (hdr->stalled || ++rounds > WAIT_ROUNDS) {
            hdr->stalled = 1;
            return 0;
        }
        drop_lock();
        usleep(100);
        take_lock();
        pos = hdr->head & (cap - 1);
        skip = cap - pos < need ? cap - pos : 0;
    }
    if (skip) {
        *(u32 *)&ring[pos] = (u32)skip;
        *(u32 *)&ring[pos + 4] = 1;
        __asm__ __volatile__("" : : : "memory");
        hdr->head += skip;
        pos = 0;
    }
    return &ring[pos];
}

static void record_hit(GumInvocationContext *ic, u32 index, int leaving) {
    if (off || hdr->closed)
        return;
    add_one(&counts[index]);
    struct site *s = &sites[index];
    if (!s->record)
        return;
    GumCpuContext *c = ic->cpu_context;
    u8 scratch[sizeof(struct event) - 8 * MAX_PIECES + AREA];
    struct event *e = (struct event *)scratch;
    u8 *area = (u8 *)e->words;
    struct { u64 sec; u64 nsec; } now;
    clock_gettime(1, &now);  /* CLOCK_MONOTONIC: what bpf_ktime_get_ns reads */
    e->ts = now.sec * 1000000000ull + now.nsec;
    e->tid = current_tid(ic);
    e->site = index;
    e->failed = 0;
    e->pad = 0;
    if (leaving)
        /* Frida's leave trampoline runs on a stack of its own making: the frame's CFA is
         * what the entry saw (see on_leave_enter). */
        e->cfa = *(u64 *)gum_invocation_context_get_listener_invocation_data(ic, sizeof(u64));
    else
        e->cfa = reg_value(c, s->cfa_reg) + s->cfa_offset;
    u32 n = s->npieces;
    for (u32 i = 0; i < MAX_PIECES; i++) {
        u64 word = 0;
        if (i < n) {
            struct piece *p = &s->pieces[i];
            u64 value = reg_value(c, p->reg);
            if (p->memory) {
                u32 size = p->size > 8 ? 8 : p->size;
                u64 address = value + p->offset;
                if (p->reg == 7 && p->offset >= 0)
                    __builtin_memcpy(&word, (void *)address, size);  /* the live stack */
                else if (safe_read(&word, address, size) < 0)
                    word = 0;
            } else {
                word = value;
            }
        }
        e->words[i] = word;
    }
    if (s->save_reg || s->load_word) {
        /* Before the copies: a hidden return pointer is where they copy from. */
        take_lock();
        if (s->save_reg) {
            struct saved_slot *slot = saved_slot(e->cfa, e->tid, 1);
            if (slot) {
                slot->cfa = e->cfa; slot->tid = e->tid;
                slot->value = s->save_reg > 32 ? e->words[(s->save_reg - 33) & (MAX_PIECES - 1)]
                                               : reg_value(c, s->save_reg - 1);
                slot->used = 1;
            }
        }
        if (s->load_word) {
            struct saved_slot *slot = saved_slot(e->cfa, e->tid, 0);
            e->words[(s->load_word - 1) & (MAX_PIECES - 1)] = slot ? slot->value : 0;
            if (slot) slot->used = 2;
        }
        drop_lock();
    }
    u32 used = 8 * MAX_PIECES;
    if (s->nderefs) {
        u32 n = s->nderefs < SITE_DEREFS ? s->nderefs : SITE_DEREFS;
        if (s->pad)
            e->failed = STOPPED | n;
        u32 cursor = TABLE + ((4 * n + 7) & ~7u);  /* as the BPF program: after its entries */
        for (u32 i = 0; i < n; i++)
            *(u32 *)&area[TABLE + 4 * i] = copy_one(area, &s->derefs[i], &cursor);
        used = cursor > AREA ? AREA : cursor;
    }
    u32 size = sizeof(struct event) - 8 * MAX_PIECES + used;
    u32 need = (8 + size + 7) & ~7u;
    take_lock();  /* one lock for the ring and the saved-pointer table */
    u8 *at = reserve(need);
    if (!at) {
        hdr->lost++;
        drop_lock();
        return;
    }
    *(u32 *)at = need;
    *(u32 *)(at + 4) = 0;
    __builtin_memcpy(at + 8, scratch, size);
    __asm__ __volatile__("" : : : "memory");
    hdr->head += need;
    drop_lock();
}

/* The listener's data: the site number; for a leaf's combined hook, the entry site's in the
 * low 32 bits and the return site's in the high ones. */
static inline u64 listener_data(GumInvocationContext *ic) {
    return (u64)(gsize)gum_invocation_context_get_listener_function_data(ic);
}

void on_hit(GumInvocationContext *ic) { record_hit(ic, (u32)listener_data(ic), 0); }

void on_leave(GumInvocationContext *ic) { record_hit(ic, (u32)(listener_data(ic) >> 32), 1); }

/* A leaf's entry and return in one function listener (Frida runs one trampoline for both):
 * keep the CFA for the return, then record the entry. */
void on_enter_both(GumInvocationContext *ic) {
    on_leave_enter(ic);
    record_hit(ic, (u32)listener_data(ic), 0);
}
"""

JS_SOURCE = r"""
const libc = (name, ret, args) => new NativeFunction(Module.getGlobalExportByName(name), ret, args);
const cm = new CModule(SOURCE, {
  process_vm_readv: Module.getGlobalExportByName('process_vm_readv'),
  clock_gettime: Module.getGlobalExportByName('clock_gettime'),
  usleep: Module.getGlobalExportByName('usleep'),
  getpid: Module.getGlobalExportByName('getpid'),
  pthread_self: Module.getGlobalExportByName('pthread_self'),
  kill: Module.getGlobalExportByName('kill'),
  __errno_location: Module.getGlobalExportByName('__errno_location'),
  st: Memory.alloc(64),
  saved: Memory.alloc(SAVED_BYTES),
});
const listeners = [];
rpc.exports = {
  // follow: forked children count too; child: an exec'd child of the run (its exit, abort
  // or fault is not the run's).
  setup(path, size, sites, pie, semaphores, follow, child) {
    const open = libc('open', 'int', ['pointer', 'int']);
    const close = libc('close', 'int', ['int']);
    const mmap = libc('mmap', 'pointer', ['pointer', 'size_t', 'int', 'int', 'int', 'int64']);
    const fd = open(Memory.allocUtf8String(path), 2 /* O_RDWR */);
    if (fd < 0) throw new Error('cannot open the shared buffer ' + path);
    const base = mmap(NULL, size, 3 /* PROT_READ|WRITE */, 1 /* MAP_SHARED */, fd, 0);
    close(fd);
    if (base.equals(ptr(-1))) throw new Error('cannot map the shared buffer');
    new NativeFunction(cm.attach_buffer, 'void', ['pointer'])(base);
    new NativeFunction(cm.set_follow, 'void', ['int', 'int'])(follow ? 1 : 0, child ? 1 : 0);
    // Where glibc's struct pthread holds the thread id: the one offset in its first bytes
    // holding this thread's id (none or several: ask Frida, a system call per hit).
    const self = libc('pthread_self', 'pointer', [])();
    const tid = Process.getCurrentThreadId();
    const offsets = [];
    for (let at = 8; at < 0x800; at += 4) {
      try { if (self.add(at).readU32() === tid) offsets.push(at); } catch (e) { break; }
    }
    if (offsets.length === 1)
      new NativeFunction(cm.set_tid_offset, 'void', ['int'])(offsets[0]);
    // glibc exports pthread_atfork's implementation as __register_atfork only.
    libc('__register_atfork', 'int', ['pointer', 'pointer', 'pointer', 'pointer'])(
      NULL, NULL, cm.after_fork_child, NULL);
    const start = Process.mainModule.base;
    for (const address of semaphores) {  // a u16 in .probes: one more tracer watches
      const at = pie ? start.add(address) : ptr(address);
      const range = Process.findRangeByAddress(at);
      const writable = range !== null && range.protection.includes('w');
      if (!writable) Memory.protect(at, 2, 'rw-');
      at.writeU16(at.readU16() + 1);
      if (!writable && range !== null) Memory.protect(at, 2, range.protection);
    }
    const failed = [];
    for (const [index, address, kind] of sites) {
      const at = pie ? start.add(address) : ptr(address);
      try {
        if (kind === 'leave')  // index: the return site's, in the high half
          listeners.push(Interceptor.attach(at,
            { onEnter: cm.on_leave_enter, onLeave: cm.on_leave },
            ptr(uint64(index).shl(32).toString())));
        else if (kind === 'both')  // index: [entry site, return site]
          listeners.push(Interceptor.attach(at,
            { onEnter: cm.on_enter_both, onLeave: cm.on_leave },
            ptr(uint64(index[0]).or(uint64(index[1]).shl(32)).toString())));
        else if (kind === 'enter')
          listeners.push(Interceptor.attach(at, { onEnter: cm.on_hit }, ptr(index)));
        else
          listeners.push(Interceptor.attach(at, cm.on_hit, ptr(index)));
      } catch (e) {
        failed.push([Array.isArray(index) ? index[0] : index, e.message]);
      }
    }
    if (child) {
      Interceptor.flush();
      return failed;
    }
    // How the process ends (see on_exit_call): _exit is where exit() and a return from main end.
    for (const [name, callback] of [['_exit', cm.on_exit_call], ['abort', cm.on_abort_call]])
      listeners.push(Interceptor.attach(Module.getGlobalExportByName(name), { onEnter: callback }));
    // A fault the program may die of: its signal, in case Frida's child watch reaps the
    // process first (a later _exit or abort overrides it). The program's own handlers run
    // as before: returning false passes the signal on. Not a forked child's fault.
    const header = base;
    const getpid = libc('getpid', 'int', []);
    const root = getpid();
    Process.setExceptionHandler(details => {
      const signal = FAULT_SIGNALS[details.type];
      if (signal !== undefined && getpid() === root && header.add(EXIT_HOW).readU32() === 0) {
        header.add(EXIT_CODE).writeU32(signal);
        header.add(EXIT_HOW).writeU32(3);
      }
      return false;
    });
    Interceptor.flush();
    return failed;
  },
};
"""


def c_source() -> str:
    return (
        C_SOURCE.replace("@MAX_PIECES@", str(MAX_PIECES))
        .replace("@AREA@", str(IN_PROCESS_AREA))  # on the target's stack: smaller
        .replace("@MAX_DEREFS@", str(MAX_DEREFS))
        .replace("@SITE_DEREFS@", str(IN_PROCESS_DEREFS))
        .replace("@MAX_COPY@", str(MAX_COPY))
        .replace("@START_LIMIT@", str(IN_PROCESS_AREA - MAX_COPY))
        .replace("@TABLE@", str(TABLE))
        .replace("@DATA@", str(DATA))
        .replace("@SAVED_SLOTS@", str(SAVED_SLOTS))
    )


def script_source() -> str:
    """The agent's script: the C source is a JSON string literal inside it."""
    import json

    return (
        f"const SOURCE = {json.dumps(c_source())};\nconst SAVED_BYTES = {SAVED_SLOTS * 32};\n"
        f"const FAULT_SIGNALS = {json.dumps(FAULT_SIGNALS)};\n"
        f"const EXIT_CODE = {Header.exit_code.offset};\n"
        f"const EXIT_HOW = {Header.exit_how.offset};\n" + JS_SOURCE
    )

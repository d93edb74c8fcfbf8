/* signals.c — malloc, free, calloc and realloc made safe to call from signal handlers. Layer 5.
 * sigaction() and signal() are interposed, and every other name of libc's that installs a
 * handler (below: they call libc's sigaction from inside libc, past an interposed one): the
 * program's handler is run through a wrapper that
 * checks whether the signal interrupted this thread inside the allocator (its program counter
 * in liblabyrinth's code, a lock held, a room or heap list being changed). Only then does the
 * handler run on a signal heap (core/arena.h: LAB_GFP_ATOMIC refills, remote frees), so a
 * handler that interrupted ordinary code costs nothing, and the fast paths carry no check.
 * errno is preserved across the handler. Limits (README): a handler that longjmps out after
 * interrupting the allocator leaves that allocation unfinished, as with any allocator. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <ucontext.h>

#include "alloc.h"
#include "mmap.h"
#include "mmap_pool.h"

#define LAB_EXPORT __attribute__((visibility("default")))

/* The bounds of this object's code (defined by the linker for shared objects too). */
extern const char __ehdr_start[] __attribute__((visibility("hidden")));
extern const char etext[] __attribute__((visibility("hidden")));

typedef int (*sigaction_fn)(int, const struct sigaction *, struct sigaction *);
static sigaction_fn real_sigaction;

/* The program's handlers, by signal number; read in the wrapper, written by sigaction. One word
 * each, the handler with the two flags the wrapper reads in its top bits (no handler's address
 * reaches them): apart, a wrapper could read one thread's handler with another's flags, and a
 * handler set with SA_SIGINFO was called with no siginfo (found by review: a thread switching a
 * signal between two handlers while another sent it, a few calls in 100 000). */
#define USER_SIGINFO   ((uintptr_t)1 << 63)
#define USER_RESETHAND ((uintptr_t)1 << 62)
static uintptr_t user[NSIG];

static inline uintptr_t user_word(void *h, int flags)
{
    return (uintptr_t)h | (flags & SA_SIGINFO ? USER_SIGINFO : 0) | (flags & SA_RESETHAND ? USER_RESETHAND : 0);
}
static inline void *user_handler(uintptr_t w) { return (void *)(w & ~(USER_SIGINFO | USER_RESETHAND)); }

/* Where handlers return to: libc's sigreturn trampoline (the wrapper's return address). */
static uintptr_t sig_restorer;

/* Whether a handler must not use the heap the thread is on (core/pool.h: LAB_HANDLER_*): HARD, the
 * signal interrupted the allocator in the middle of a change (a lock held, a heap or room being
 * changed); SOFT, it may have: its program counter in this library's code (a fast path has no
 * flag), or in the wrapper of a handler that did, before it switched to a signal heap or after it
 * switched back, where the program counter is in libc (errno's address, the sigreturn
 * trampoline) while the heap below is still half changed (found by review: three timers whose
 * handlers nest over two threads corrupted heaps under LABYRINTH_SECURE=1, whose batch refill is
 * a long window); PLAIN, it did not. No libc call in here: a signal may land anywhere in it. */
static unsigned interrupted_allocator(void *uctx)
{
    if (lab_locks_held || lab_heap_busy() || lab_pool_room_busy())
        return LAB_HANDLER_HARD;
    if (lab_pool_handler_nested && !lab_sig_on_signal_heap())
        return LAB_HANDLER_SOFT;
    if (!uctx)
        return LAB_HANDLER_SOFT;
    uintptr_t pc = (uintptr_t)((ucontext_t *)uctx)->uc_mcontext.gregs[REG_RIP];
    if (lab_sys_entry_pc(pc))
        return LAB_HANDLER_PLAIN; /* the program's mmap, mprotect, madvise, ... (mmap.h) */
    uintptr_t ret = __atomic_load_n(&sig_restorer, __ATOMIC_RELAXED);
    if (ret && pc - ret < 16)
        return LAB_HANDLER_SOFT; /* between two handlers: what it returns to is not known here */
    return pc >= (uintptr_t)__ehdr_start && pc < (uintptr_t)etext ? LAB_HANDLER_SOFT : LAB_HANDLER_PLAIN;
}

/* A SOFT handler (above) left by longjmp, undone at a safe point (core/pool.h): the thread back
 * on the heap it was on, holding the signal heaps it held then (the counts its wrapper raised
 * are set back by the pool). */
static void handler_undo(void *prev, uint64_t mine) { lab_sig_restore(prev, mine); }

/* The wrapper records the handler (lab_pool_handler_enter) before it calls anything outside this
 * library or changes anything, and takes the record back last: from start to end a handler
 * nested in its calls into libc counts it (lab_pool_handler_nested), and a longjmp out of the
 * handler, or out of one nested anywhere in the wrapper, leaves a record that sets the thread
 * back to where the wrapper began. */
static void wrapper(int sig, siginfo_t *info, void *uctx)
{
    /* decided first, before any call out of this library */
    unsigned kind = interrupted_allocator(uctx);
    bool nested = kind != LAB_HANDLER_PLAIN;
    /* no purge and no thread start from a handler (core/pool.h); the handler recorded by this
     * frame and, when it began on the alternate signal stack, that stack (uc_stack: the thread's
     * at delivery), so that one left by longjmp is not taken as running for good */
    uintptr_t frame = (uintptr_t)__builtin_frame_address(0), alt_lo = 0, alt_hi = 0, sp = 0;
    if (uctx) {
        sp = (uintptr_t)((const ucontext_t *)uctx)->uc_mcontext.gregs[REG_RSP];
        const stack_t *ss = &((const ucontext_t *)uctx)->uc_stack;
        if (!(ss->ss_flags & SS_DISABLE) && frame - (uintptr_t)ss->ss_sp < ss->ss_size) {
            alt_lo = (uintptr_t)ss->ss_sp;
            alt_hi = alt_lo + ss->ss_size;
        }
    }
    /* a safe point when it interrupted no allocator code: handlers left by longjmp before are
     * dropped (SOFT ones undone: the heap read next may change) */
    if (!nested && sp && lab_pool_handler_depth)
        (void)lab_pool_handler_recover(sp);
    lab_heap_t *prev = lab_tls_heap;
    unsigned outer = lab_pool_handler_enter(frame, alt_lo, alt_hi, kind, prev, lab_sig_mine());
    if (lab_unlikely(!__atomic_load_n(&sig_restorer, __ATOMIC_RELAXED)))
        __atomic_store_n(&sig_restorer, (uintptr_t)__builtin_return_address(0), __ATOMIC_RELAXED);
    int saved_errno = errno;
    uintptr_t w = __atomic_load_n(&user[sig], __ATOMIC_ACQUIRE);
    void *h = user_handler(w);
    /* not while this thread holds pooled mmap's lock (mmap_pool.c); a one-shot handler runs now:
     * its disposition is the default already, which the signal queued again would meet */
    if (lab_unlikely(!(w & USER_RESETHAND) && lab_mmpool_defer_signal(sig, info, uctx))) {
        errno = saved_errno;
        lab_pool_handler_leave(frame, outer);
        return;
    }
    if (nested)
        (void)lab_sig_enter(); /* on a signal heap (ATOMIC: no system call) */
    /* no futex call when it gives a lock back either (core/lock.h); not for every handler: one
     * that longjmps out would leave it raised until its record is undone */
    lab_lock_quiet += nested;
    if (h != (void *)SIG_IGN && h != (void *)SIG_DFL && h) {
        if (w & USER_SIGINFO)
            ((void (*)(int, siginfo_t *, void *))h)(sig, info, uctx);
        else
            ((void (*)(int))h)(sig);
    }
    lab_pool_handler_returned(frame);
    lab_lock_quiet -= nested;
    if (nested)
        lab_sig_exit(prev);
    errno = saved_errno;
    lab_pool_handler_leave(frame, outer);
}

static int call_real(int sig, const struct sigaction *act, struct sigaction *old)
{
    if (!real_sigaction) {
        real_sigaction = (sigaction_fn)dlsym(RTLD_NEXT, "sigaction");
        if (!real_sigaction) {
            errno = ENOSYS;
            return -1;
        }
    }
    return real_sigaction(sig, act, old);
}

/* sigaction's body. The library's other names call it directly, never the exported sigaction:
 * through the PLT that reached whatever the program or a library loaded before us defines under
 * that name. Erlang's beam.smp exports sigaction and __sigaction, which forward to the next
 * __sigaction (ours): erl, erlc and escript recursed until the stack overflowed at start; the
 * JDK's libjsig.so, preloaded ahead of us as the JDK documents, deadlocked on its own mutex at
 * the first signal() (found by review). */
static int lab_sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
    if (sig <= 0 || sig >= NSIG)
        return call_real(sig, act, old);
    uintptr_t prev_word = __atomic_load_n(&user[sig], __ATOMIC_RELAXED);
    void *prev_user = user_handler(prev_word);
    struct sigaction mine, prev;
    const struct sigaction *use = act;
    if (act && act->sa_handler != SIG_IGN && act->sa_handler != SIG_DFL) {
        /* ready before the first delivery; not from a handler (a handler that re-arms itself
         * with signal() may have interrupted the making of a heap, under the lock this takes:
         * the signal heaps made so far serve) */
        if (!lab_pool_in_handler()) {
            lab_sig_reserve(16);
            lab_pool_set_handler_undo(handler_undo);
        }
        void *h = (act->sa_flags & SA_SIGINFO) ? (void *)act->sa_sigaction : (void *)act->sa_handler;
        /* written only when they change: a shell sets the same handlers around every command it
         * forks, and each write after a fork copies the table's page */
        if (prev_word != user_word(h, act->sa_flags))
            __atomic_store_n(&user[sig], user_word(h, act->sa_flags), __ATOMIC_RELEASE);
        mine = *act;
        mine.sa_sigaction = wrapper;
        mine.sa_flags |= SA_SIGINFO;
        use = &mine;
    }
    int r = call_real(sig, use, &prev);
    if (r != 0) {
        __atomic_store_n(&user[sig], prev_word, __ATOMIC_RELEASE);
        return r;
    }
    if (old) {
        *old = prev;
        if (prev.sa_sigaction == wrapper) { /* report the program's handler, not ours */
            if (prev_word & USER_SIGINFO)
                old->sa_sigaction = (void (*)(int, siginfo_t *, void *))prev_user;
            else
                old->sa_handler = (sighandler_t)prev_user;
            old->sa_flags = (prev.sa_flags & ~SA_SIGINFO) | (prev_word & USER_SIGINFO ? SA_SIGINFO : 0);
        }
    }
    return r;
}

LAB_EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
    return lab_sigaction(sig, act, old);
}

/* Signals siginterrupt(sig, 1) asked to interrupt system calls: signal() leaves SA_RESTART off
 * for them, as glibc's does. glibc keeps that set inside libc, where its siginterrupt writes it
 * and its signal reads it; interposing signal alone, every handler restarted calls (a read()
 * that glibc lets SIGALRM interrupt hung: found by running CPython's test suite), so siginterrupt
 * is interposed too, and the set is kept here. */
static uint64_t intr_set[(NSIG + 63) / 64];

LAB_EXPORT int siginterrupt(int sig, int interrupt)
{
    struct sigaction act;
    if (sig <= 0 || sig >= NSIG) {
        errno = EINVAL;
        return -1;
    }
    if (lab_sigaction(sig, NULL, &act) < 0)
        return -1;
    uint64_t bit = (uint64_t)1 << (sig % 64);
    if (interrupt) {
        __atomic_fetch_or(&intr_set[sig / 64], bit, __ATOMIC_RELAXED);
        act.sa_flags &= ~SA_RESTART;
    } else {
        __atomic_fetch_and(&intr_set[sig / 64], ~bit, __ATOMIC_RELAXED);
        act.sa_flags |= SA_RESTART;
    }
    return lab_sigaction(sig, &act, NULL) < 0 ? -1 : 0;
}

static sighandler_t lab_signal(int sig, sighandler_t handler)
{
    struct sigaction act, old;
    memset(&act, 0, sizeof act);
    act.sa_handler = handler;
    /* glibc's signal(): BSD semantics, the signal blocked while its handler runs */
    sigemptyset(&act.sa_mask);
    if (sig > 0 && sig < NSIG) {
        sigaddset(&act.sa_mask, sig);
        if (!(__atomic_load_n(&intr_set[sig / 64], __ATOMIC_RELAXED) & ((uint64_t)1 << (sig % 64))))
            act.sa_flags = SA_RESTART;
    }
    if (lab_sigaction(sig, &act, &old) != 0)
        return SIG_ERR;
    return old.sa_handler;
}

/* The other names of libc that install a handler. Inside libc each calls libc's own sigaction,
 * which an interposed one does not replace: a handler set through them ran without the wrapper
 * (found by review: malloc in a sigset() handler that interrupted malloc broke the thread's heap),
 * and they reported the wrapper as the handler in force, which set back through them would run
 * with arguments it does not expect. So they are rebuilt here on the sigaction above, with the
 * semantics glibc documents for each. */
LAB_EXPORT int __sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
    return lab_sigaction(sig, act, old);
}

/* glibc's signal() is BSD's */
LAB_EXPORT sighandler_t signal(int sig, sighandler_t handler) { return lab_signal(sig, handler); }
LAB_EXPORT sighandler_t bsd_signal(int sig, sighandler_t handler) { return lab_signal(sig, handler); }
LAB_EXPORT sighandler_t ssignal(int sig, sighandler_t handler) { return lab_signal(sig, handler); }

/* System V's signal(): the disposition back to the default as the handler starts (SA_RESETHAND),
 * the signal not blocked while it runs (SA_NODEFER), interrupted calls not restarted. */
static sighandler_t lab_sysv_signal(int sig, sighandler_t handler)
{
    if (handler == SIG_ERR || sig <= 0 || sig >= NSIG) {
        errno = EINVAL;
        return SIG_ERR;
    }
    struct sigaction act, old;
    memset(&act, 0, sizeof act);
    act.sa_handler = handler;
    sigemptyset(&act.sa_mask);
    act.sa_flags = SA_RESETHAND | SA_NODEFER;
    return lab_sigaction(sig, &act, &old) != 0 ? SIG_ERR : old.sa_handler;
}
LAB_EXPORT sighandler_t sysv_signal(int sig, sighandler_t handler) { return lab_sysv_signal(sig, handler); }
LAB_EXPORT sighandler_t __sysv_signal(int sig, sighandler_t handler) { return lab_sysv_signal(sig, handler); }

/* X/Open's sigset(): SIG_HOLD adds the signal to the thread's mask; any other disposition is set
 * (an empty mask, no flags) and the signal taken out of the mask. The result is SIG_HOLD if the
 * signal was blocked before, else the disposition it had. */
LAB_EXPORT sighandler_t sigset(int sig, sighandler_t disp)
{
    if (disp == SIG_ERR || sig <= 0 || sig >= NSIG) {
        errno = EINVAL;
        return SIG_ERR;
    }
    sigset_t one, was;
    sigemptyset(&one);
    sigaddset(&one, sig);
    struct sigaction act, old;
    if (disp == SIG_HOLD) {
        if (sigprocmask(SIG_BLOCK, &one, &was) != 0)
            return SIG_ERR;
        if (sigismember(&was, sig))
            return SIG_HOLD;
        return lab_sigaction(sig, NULL, &old) != 0 ? SIG_ERR : old.sa_handler;
    }
    memset(&act, 0, sizeof act);
    act.sa_handler = disp;
    sigemptyset(&act.sa_mask);
    if (lab_sigaction(sig, &act, &old) != 0 || sigprocmask(SIG_UNBLOCK, &one, &was) != 0)
        return SIG_ERR;
    return sigismember(&was, sig) ? SIG_HOLD : old.sa_handler;
}

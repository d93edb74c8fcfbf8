/* lock.h — the one lock of the core: a three-state futex mutex (0 free, 1 held, 2 contended).
 * Layer 1 (beside os). Slow paths only; never taken on a fast path. lab_lock_try never waits and
 * makes no system call, so LAB_GFP_ATOMIC callers and signal handlers may use it. Not recursive. */
#ifndef LAB_LOCK_H
#define LAB_LOCK_H

#include "os.h"

typedef struct { int v; } lab_lock_t;
#define LAB_LOCK_INIT { 0 }

/* Locks the calling thread holds, or is taking or giving back: a signal handler that interrupted
 * it must not wait on them (nor a fork from that handler take them all). Never below the truth
 * at any instruction a signal may interrupt: raised before a lock is taken, lowered after it is
 * given back (the signal fences keep the compiler from moving it across). Counted after the
 * compare-and-swap instead, a handler that came between the two found a lock held and none
 * counted, and a fork from it waited for that lock for ever (found by review). */
lab_internal extern __thread int lab_locks_held;
/* Non-zero while the thread runs an ATOMIC call or a signal handler (never a system call): its
 * unlock wakes no waiter. Waiters look again every LAB_LOCK_WAIT_MS, so one whose wake-up was
 * left out waits that long at most (a lock an ATOMIC caller only ever tries, held briefly). */
lab_internal extern __thread int lab_lock_quiet;
#define LAB_LOCK_WAIT_MS 2

lab_inline bool lab_lock_try(lab_lock_t *l)
{
    int z = 0;
    lab_locks_held++;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    /* acquire: the critical section's reads must not move above taking the lock */
    bool ok = __atomic_compare_exchange_n(&l->v, &z, 1, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    lab_locks_held -= !ok;
    return ok;
}

lab_inline void lab_lock(lab_lock_t *l)
{
    if (lab_likely(lab_lock_try(l)))
        return;
    for (int spin = 0; spin < 100; spin++) {
        __builtin_ia32_pause();
        if (lab_load_relaxed(&l->v) == 0 && lab_lock_try(l))
            return;
    }
    lab_locks_held++; /* while it waits too: the exchange that wins holds the lock */
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    /* acquire, as above; 2 marks waiters so unlock knows to wake */
    while (__atomic_exchange_n(&l->v, 2, __ATOMIC_ACQUIRE) != 0)
        lab_os_futex_wait_ms(&l->v, 2, LAB_LOCK_WAIT_MS);
}

lab_inline void lab_unlock(lab_lock_t *l)
{
    /* release: the critical section's writes are visible before the lock reads free */
    if (__atomic_exchange_n(&l->v, 0, __ATOMIC_RELEASE) == 2 && lab_likely(!lab_lock_quiet))
        lab_os_futex_wake(&l->v, 1);
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    lab_locks_held--;
}

/* After fork() in the child: whoever held it is gone. */
lab_inline void lab_lock_reset(lab_lock_t *l) { l->v = 0; }

#endif

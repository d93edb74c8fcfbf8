/* lock.h — the one lock of the core: a three-state futex mutex (0 free, 1 held, 2 contended).
 * Layer 1 (beside os). Slow paths only; never taken on a fast path. lab_lock_try never waits and
 * makes no system call, so LAB_GFP_ATOMIC callers and signal handlers may use it. Not recursive. */
#ifndef LAB_LOCK_H
#define LAB_LOCK_H

#include "os.h"

typedef struct { int v; } lab_lock_t;
#define LAB_LOCK_INIT { 0 }

/* Locks the calling thread holds: a signal handler that interrupted it must not wait on them. */
lab_internal extern __thread int lab_locks_held;

lab_inline bool lab_lock_try(lab_lock_t *l)
{
    int z = 0;
    /* acquire: the critical section's reads must not move above taking the lock */
    bool ok = __atomic_compare_exchange_n(&l->v, &z, 1, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
    lab_locks_held += ok;
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
    /* acquire, as above; 2 marks waiters so unlock knows to wake */
    while (__atomic_exchange_n(&l->v, 2, __ATOMIC_ACQUIRE) != 0)
        lab_os_futex_wait(&l->v, 2);
    lab_locks_held++;
}

lab_inline void lab_unlock(lab_lock_t *l)
{
    /* release: the critical section's writes are visible before the lock reads free */
    lab_locks_held--;
    if (__atomic_exchange_n(&l->v, 0, __ATOMIC_RELEASE) == 2)
        lab_os_futex_wake(&l->v, 1);
}

/* After fork() in the child: whoever held it is gone. */
lab_inline void lab_lock_reset(lab_lock_t *l) { l->v = 0; }

#endif

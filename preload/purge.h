/* purge.h — the background purge thread (preload/purge.c). Layer 5. */
#ifndef LAB_PURGE_H
#define LAB_PURGE_H

#include <stddef.h>

/* Let the pool start the thread once the default pool has mapped `mib` MiB (0: never, and no
 * further start, e.g. at exit). Called from the constructor and the destructor only. */
__attribute__((visibility("hidden"))) void lab_purge_init(unsigned long mib);

#endif

/* options.h — the one list of Labyrinth's options. Each X(NAME, kind, default, doc) makes an
 * environment variable LABYRINTH_<NAME>, a field of lab_options, its default, and a row of the
 * README's option table (printed by `labyrinth-options --markdown`). Layer 5 (preload). */
#ifndef LAB_OPTIONS_H
#define LAB_OPTIONS_H

/* kinds: BOOL (0/1), UINT (decimal), STATS (0, 1 or json), PATH (a file name; unset: none) */
#define LAB_OPTIONS(X)                                                                          \
    X(VERBOSE, BOOL, 0, "1: a one-line banner on stderr at start (version, build, options in force), and the first foreign frees reported") \
    X(STATS, STATS, 0, "1: a human summary of allocator statistics on stderr at exit (README: Statistics); classes: the same and a line per size class (its spans, blocks, blocks in use); json: all of it as one JSON object") \
    X(STATS_FILE, PATH, 0, "with STATS: a file the summary is appended to instead of stderr (whose output some programs check, and which some close before they exit: tar, xz, the coreutils); %p in the name becomes the process id (%% a percent sign), so each process of a program that forks or runs others writes its own (one that ends in _exit, by a signal or in exec writes none: the summary is written at exit)") \
    X(PURGE_DELAY_MS, UINT, 1000, "free pages idle this long (milliseconds) are given back to the OS with MADV_DONTNEED; 0: as soon as the allocator next runs") \
    X(SECURE, BOOL, 0, "1: hardened small blocks: random allocation order, delayed reuse of freed blocks, a PROT_NONE guard page at the end of every span (costs speed and a page in 8 of the spans of blocks up to 8 KiB, in 32 or 64 above)") \
    X(BACKGROUND_PURGE, UINT, 32, "MiB the malloc pool (or a user pool) must have mapped before a background thread (started then, and in a fork child again when it allocates) returns free memory of every pool idle past its purge delay without waiting for the program's next allocator call; 0: no thread") \
    X(THP, UINT, 0, "MiB the malloc pool must have mapped (and at least one chunk for each thread with a heap) before the chunks (2 MiB) it maps next are advised MADV_HUGEPAGE: the kernel backs each with one transparent huge page at its first touch (one page fault instead of up to 512, fewer TLB misses, but the whole 2 MiB cleared at once, from memory the kernel may have to find and the host to back first); the first purge in a chunk turns it back to small pages; 0: small pages only (the default; README: Huge pages)") \
    X(RESERVE_GB, UINT, 64, "GiB of address space (not memory) reserved for the malloc pool's chunks, so that free() finds a block's metadata with one lookup; chunks beyond it, or all of them with 0, under `ulimit -v`, or where the kernel refuses (halved down to 1 GiB), are mapped anywhere and freed through the two-level page map (three dependent loads instead of one); at most 1024") \
    X(KEPT_KIB, UINT, 4096, "KiB of emptied spans each thread's heap keeps whole for its next spans of small blocks (no trip through the pool, no carving: programs that allocate and free hundreds of 4 to 16 KiB blocks at a time); beyond it they go back to the pool; a thread's kept spans idle past the purge delay are given back by the background thread; 0: none kept") \
    X(NURSERY, BOOL, 1, "1: each thread's first blocks of every size up to 1 KiB (up to 64 of a size and 4 KiB of its bytes) come from one 64 KiB run shared by all sizes (a 16-byte header each, not reused until the whole run is free), where a span per size would touch a page per size: a short process faults in a few pages instead of dozens (a process start's cost, on VMs where a fault costs microseconds); 0: every small block from its size's span") \
    X(PAGEMAP, BOOL, 1, "1: calloc of 128 KiB or more over pages used before asks the kernel which of them were ever written (mincore and sysinfo; with swap configured, /proc/self/pagemap: openat, pread, close) and clears only those (the others read zero: no page faulted in for nothing); 0: never asks (for a program under a seccomp filter that kills on those calls), clears them all") \
    X(TRIM_ON_EXIT, BOOL, 0, "1: purge all free memory when the process exits (useful when measuring leaks)") \
    X(MMAP, BOOL, 0, "1: private anonymous read-write mmap requests of up to LABYRINTH_MMAP_MAX bytes are served from a pool of reserved address space, and munmap keeps their pages (inaccessible) for reuse; see Pooled anonymous mmap") \
    X(MMAP_MAX, UINT, 1048576, "largest mmap request (bytes) that LABYRINTH_MMAP pools; larger ones go to the kernel (at most 268435456, rounded down to a page)") \
    X(MMAP_CACHE, UINT, 16777216, "bytes of unmapped pooled pages LABYRINTH_MMAP keeps for reuse; beyond this, or idle past the purge delay, they are given back to the OS")

enum lab_option_kind { LAB_OPT_BOOL, LAB_OPT_UINT, LAB_OPT_STATS, LAB_OPT_PATH };

struct lab_options {
#define X(name, kind, def, doc) unsigned long name; /* PATH: a char * (into a static copy) */
    LAB_OPTIONS(X)
#undef X
};

enum { LAB_STATS_OFF = 0, LAB_STATS_TEXT = 1, LAB_STATS_JSON = 2, LAB_STATS_CLASSES = 3 };

#endif

#!/bin/sh
# sort.sh — GNU sort's external merge, as a data script or a build runs it on a file larger than
# its buffer: -S 4M and two threads, so sort fills one 4 MiB buffer at a time, writes each as a
# temporary file, then merges them through sixteen 256 KiB input buffers and on. Its memory moves
# from one big block to many page-sized ones: an allocator that keeps the freed buffer cached, or
# does not reuse the merge buffers' pages, peaks far above what is live (Labyrinth did, at 1.9
# times glibc's peak RSS). Prints a checksum of the sorted output.
#   sort.sh INPUT TMPDIR   (bench/run.py writes INPUT: lines of two numeric fields)
export LC_ALL=C
sort -S 4M --parallel=2 -T "$2" -t, -k2,2n -k1,1r "$1" | md5sum | {
    read -r sum _
    echo "checksum=$sum"
}

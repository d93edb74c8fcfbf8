#!/bin/sh
# spawn.sh — process start-up, as a test suite or a build script pays it: ROUNDS rounds of short
# programs (git --version, perl, python3, gcc --version, sort of a few lines), each a new process
# under the same LD_PRELOAD (the shell that runs them too). Every process maps its allocator's
# first memory and faults its first pages in, so what is measured is the allocator's start-up:
# its set-up, and how many pages its first few hundred allocations touch (page faults are dear on
# these VMs). A program that is not installed is left out. Prints a checksum of all the output
# (compare.sh checks it is the same under every allocator).
#   spawn.sh ROUNDS
rounds=${1:-20}
py=/usr/bin/python3
[ -x "$py" ] || py=$(command -v python3)
have() { command -v "$1" >/dev/null 2>&1; }
i=0
while [ "$i" -lt "$rounds" ]; do
    have git && git --version
    have perl && perl -e 'my %h = map { $_ => $_ * 2 } 1 .. 200; print scalar(keys %h), "\n"'
    [ -n "$py" ] && "$py" -c 'import json; print(len(json.dumps({str(i): i for i in range(200)})))'
    have gcc && gcc --version | head -n 1
    printf 'b\na\nc\n' | sort | tr -d '\n'
    echo
    i=$((i + 1))
done | md5sum | {
    read -r sum _
    echo "checksum=$sum"
}

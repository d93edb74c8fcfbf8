#!/bin/bash
# perl.sh — Perl (hashes, strings, regexes, sort) under the preload must print exactly what it
# prints on glibc.
. "$(dirname "$0")/lib.sh"
lab_need perl
export PERL_HASH_SEED=0 PERL_PERTURB_KEYS=0
lab_both perl perl "$(dirname "$0")/workload.pl"
lab_finish

#!/bin/bash
# python.sh — CPython (dicts, strings, json, threads) under the preload must print exactly what it
# prints on glibc. The interpreter is the one in PATH (override with PYTHON=...).
. "$(dirname "$0")/lib.sh"
lab_need "${PYTHON:-python3}"
export PYTHONHASHSEED=0 PYTHONDONTWRITEBYTECODE=1
lab_both python "${PYTHON:-python3}" "$(dirname "$0")/workload.py"
lab_finish

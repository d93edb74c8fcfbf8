# memory_error.py KIND — allocate until MemoryError (run under `ulimit -v`, see memory_error.sh).
# small: str objects (run with PYTHONMALLOC=malloc so that they come from malloc, not pymalloc's
# own arenas); bytes: 0..9 KB objects; big: 3 MiB bytearrays; uncaught: nothing catches it, so
# the interpreter's own handler prints the traceback and exits 1. The caught kinds then show that
# the interpreter still works and print one line that is the same on every allocator.
import sys

def grow(kind):
    blocks = []
    i = 0
    while True:
        if kind == "small":
            blocks.append(str(i) * 3)
        elif kind == "bytes":
            blocks.append(b"x" * (i % 9000))
        elif kind == "big":
            blocks.append(bytearray(3 << 20))
        else:
            blocks.append([i] * 50)
        i += 1

kind = sys.argv[1]
if kind == "uncaught":
    grow(kind)
try:
    grow(kind)
except MemoryError:
    pass
import json
print(kind, "MemoryError raised and handled; afterwards:",
      json.dumps({"sum": sum(range(100000)), "text": "-".join(str(i) for i in range(10))}))

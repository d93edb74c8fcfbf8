# workload.sh — a bash workload for tests/real/bash.sh: loops, arrays, associative arrays, string
# expansion and a few hundred command substitutions (forks). Deterministic.
declare -A seen
declare -a list
x=7
for ((i = 0; i < 20000; i++)); do
    x=$(( (x * 1103515245 + 12345) % 2147483648 ))
    key="k$(( x % 5000 ))"
    seen[$key]=$(( ${seen[$key]:-0} + 1 ))
    list+=("${key}_${i}")
done
echo "assoc: ${#seen[@]} list: ${#list[@]}"

s=""
for ((i = 0; i < 5000; i++)); do
    s+="${list[i]:0:3}-"
done
t=${s//k/K}
t=${t//-/}
echo "string: ${#s} ${#t} ${t:100:30}"

total=0
for k in "${!seen[@]}"; do
    total=$(( total + seen[$k] ))
done
echo "total: $total"

words=()
for ((i = 0; i < 3000; i++)); do
    printf -v w '%05d' $(( (i * 7919) % 10007 ))
    words+=("$w")
done
sorted=$(printf '%s\n' "${words[@]}" | sort | head -n 3 | tr '\n' ' ')
echo "sorted: $sorted"

f() { local a=("$@"); echo "${#a[@]}"; }
n=0
for ((i = 0; i < 100; i++)); do
    n=$(( n + $(f "${list[@]:i:50}") ))
done
echo "calls: $n"
unset list seen

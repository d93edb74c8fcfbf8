# git_workload.sh — the git workload for tests/real/git.sh, run as `bash git_workload.sh DIR`:
# a repository with a few hundred deterministic commits (fixed names and dates, so the hashes are
# fixed), branches and merges, diff, gc and a forced repack (threaded delta search), then fsck.
# Prints only things that are identical on any correct allocator.
set -euo pipefail
dir=$1
export HOME=$dir GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
export GIT_AUTHOR_NAME=Lab GIT_AUTHOR_EMAIL=lab@example.org
export GIT_COMMITTER_NAME=Lab GIT_COMMITTER_EMAIL=lab@example.org
mkdir -p "$dir/repo"
cd "$dir/repo"
git init -q -b main .
git config gc.auto 0

# commit SECONDS MESSAGE: dates are fixed offsets, so every run makes the same hashes.
commit() {
    export GIT_AUTHOR_DATE="$(( 1700000000 + $1 )) +0000"
    export GIT_COMMITTER_DATE=$GIT_AUTHOR_DATE
    git add -A
    git commit -q -m "$2"
}

x=1
for ((c = 1; c <= 160; c++)); do
    # Touch a few of 30 files; every file keeps growing, so deltas have something to find.
    for ((k = 0; k < 3; k++)); do
        x=$(( (x * 1103515245 + 12345) % 2147483648 ))
        f=$(( x % 30 ))
        mkdir -p "d$(( f % 4 ))"
        printf -v pad '%*s' $(( x % 60 )) ''
        printf 'line %d of commit %d: %x %s\n' "$k" "$c" "$x" "${pad// /=}" >>"d$(( f % 4 ))/file$f.txt"
    done
    if (( c % 40 == 0 )); then
        git checkout -q -b "topic$c"
        printf 'topic %d\n' "$c" >"topic$c.txt"
        commit $(( c * 60 + 10 )) "topic $c"
        git checkout -q main
        printf 'main side %d\n' "$c" >>README
        commit $(( c * 60 + 20 )) "main $c"
        GIT_AUTHOR_DATE="$(( 1700000000 + c * 60 + 30 )) +0000" \
        GIT_COMMITTER_DATE="$(( 1700000000 + c * 60 + 30 )) +0000" \
            git merge -q --no-ff -m "merge topic$c" "topic$c"
    else
        commit $(( c * 60 )) "change $c"
    fi
done

echo "head $(git rev-parse HEAD)"
commits=$(git rev-list --all | wc -l)
echo "commits $commits"
[ "$commits" -eq 168 ] || { echo "expected 168 commits, found $commits" >&2; exit 1; }
echo "log $(git log --stat --format='%H %an %at %s' | sha256sum | cut -c1-16)"
echo "diff $(git diff HEAD~120 HEAD | sha256sum | cut -c1-16)"
echo "blame $(git blame -s d0/file0.txt 2>/dev/null | sha256sum | cut -c1-16)"
git gc -q
git repack -q -a -d -f --window=50 --threads=2
echo "objects $(git cat-file --batch-all-objects --batch-check | sort | sha256sum | cut -c1-16)"
echo "packs $(git count-objects -v | grep -E '^(count|in-pack|packs):' | tr '\n' ' ')"
git fsck --full --strict --no-progress && echo "fsck ok"
echo "archive $(git archive --format=tar HEAD | sha256sum | cut -c1-16)"

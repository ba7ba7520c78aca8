#!/usr/bin/env bash
# bench/vs_torch.sh - ours against PyTorch on the CPU, row by row, in rounds (make bench-vs-torch).
# Not a test: it reports numbers.
#
#   ROUNDS=3 bash bench/vs_torch.sh            # ONLY=cvae: the rows whose names hold "cvae"
#
# For each round and each row of `bench --list`: bench/torch_bench.py --only ROW, then bench --only
# ROW --torch (its file), so the two halves of every ratio run minutes apart, not a quarter of an
# hour (this VM's speed drifts by tens of per cent over that: bench/NOTES.md, twenty-first and
# twenty-second sessions). Prints each of our rows with its ratio as it comes, then a summary: per
# row, the best training images/s of each side over the rounds (from ms/step), the ratio of the
# bests, and each round's own ratio.
# Settings (environment): ROUNDS (1), ONLY (every row), THREADS (OMP_NUM_THREADS, else 2), STEPS
# (the scripts' default), BENCH (build/bench), PY (/usr/bin/python3: Debian's python3-torch),
# OUT (build/vs_torch: each run's output, torch_rR_N.txt and ours_rR_N.txt).
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROUNDS=${ROUNDS:-1} ONLY=${ONLY:-} THREADS=${THREADS:-${OMP_NUM_THREADS:-2}} STEPS=${STEPS:-}
BENCH=${BENCH:-$ROOT/build/bench} PY=${PY:-/usr/bin/python3} OUT=${OUT:-$ROOT/build/vs_torch}
die() { echo "vs_torch: $*" >&2; exit 1; }
whole() { case $2 in '' | *[!0-9]* | 0) die "$1=$2: want a whole number >= 1" ;; esac; }
whole ROUNDS "$ROUNDS"
whole THREADS "$THREADS"
[ -z "$STEPS" ] || whole STEPS "$STEPS"
[ -x "$BENCH" ] || die "$BENCH is not built (make build/bench)"
mkdir -p "$OUT" || die "cannot make $OUT"
list=$("$BENCH" ${ONLY:+--only "$ONLY"} --list) || die "$BENCH --list failed"
[ -n "$list" ] || die "no row's name holds \"$ONLY\" (bench --list names them)"
mapfile -t rows <<<"$list"
steps=()
[ -n "$STEPS" ] && steps=(--steps "$STEPS")
for ((r = 1; r <= ROUNDS; r++)); do
    echo "== round $r of $ROUNDS"
    for i in "${!rows[@]}"; do
        t="$OUT/torch_r${r}_$i.txt" o="$OUT/ours_r${r}_$i.txt"
        "$PY" "$ROOT/bench/torch_bench.py" --threads "$THREADS" --only "${rows[$i]}" "${steps[@]}" >"$t" ||
            die "bench/torch_bench.py --only '${rows[$i]}' failed (python3-torch installed? PY=$PY)"
        OMP_NUM_THREADS=$THREADS "$BENCH" --only "${rows[$i]}" "${steps[@]}" --torch "$t" >"$o" ||
            die "$BENCH --only '${rows[$i]}' failed"
        cat "$o"
    done
done
# the summary: a row's training img/s is its batch over ms/step, as both programs print them
echo "== best of $ROUNDS round(s), training images/s ($THREADS threads; ours / PyTorch)"
for i in "${!rows[@]}"; do
    for ((r = 1; r <= ROUNDS; r++)); do
        awk -v r="$r" -v side=torch '/ batch .* train /{print side, r, $0}' "$OUT/torch_r${r}_$i.txt"
        awk -v r="$r" -v side=ours '/ batch .* train / && !/ vs /{print side, r, $0}' "$OUT/ours_r${r}_$i.txt"
    done | awk -v name="${rows[$i]}" '
        function after(w,  k) { for (k = 1; k < NF; k++) if ($k == w) return $(k + 1) }
        { b = after("batch"); ms = match($0, /\( *[0-9.]+ ms\/step/) ? substr($0, RSTART + 1, RLENGTH - 9) + 0 : 0
          v = ms > 0 ? 1000 * b / ms : 0
          if ($1 == "torch") t[$2] = v; else o[$2] = v; n = $2 > n ? $2 : n }
        END {
            for (r = 1; r <= n; r++) { if (t[r] > bt) bt = t[r]; if (o[r] > bo) bo = o[r]
                                       each = each sprintf(" %.2f", (t[r] > 0 ? o[r] / t[r] : 0)) }
            printf "%-18s PyTorch %9.2f  ours %9.2f  %6.2fx   (rounds:%s)\n", name, bt, bo, (bt > 0 ? bo / bt : 0), each
        }'
done

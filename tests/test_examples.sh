#!/usr/bin/env bash
# tests/test_examples.sh — the examples as a user runs them (run by `make test`):
#   - a run stopped mid-epoch and resumed from its checkpoint gives bit-identical per-step losses
#     (the UNet on its generated set; the CVAE on Fashion-MNIST when Debian's package is there);
#   - the NaN guard stops a run with one clear line, and the last checkpoint stays as it was;
#   - --init starts a run from a checkpoint's weights;
#   - eval gives back the training's last validation numbers (with and without --tta, and with
#     --eval-size) when the real Oxford-IIIT Pet is there (SKIP otherwise);
#   - bad command lines give one line on stderr and exit status 1, never a crash.
# Usage: tests/test_examples.sh [BUILD_DIR]   (needs BUILD_DIR/unet_pets and BUILD_DIR/cvae)
set -u
B=${1:-build}
U=$B/unet_pets
V=$B/cvae
T=$(mktemp -d /tmp/uvt_examples.XXXXXX)
trap 'rm -rf "$T"' EXIT
pass=0 fail=0
ok()  { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

# optim.step of a checkpoint, from its JSON header
ckpt_step() { head -c 65536 "$1" | tr -d '\0' | grep -ao '"optim.step":"[0-9]*"' | grep -o '[0-9]*'; }

# The per-step losses of an uninterrupted run (A) and of a run stopped after STOP steps then
# resumed from its last --save-every checkpoint (B, B2) must agree on every step.
check_resume() {   # name, stop, command...
    local name=$1 stop=$2; shift 2
    "$@" --out "$T/$name-a" --log-steps "$T/$name-a.log" >"$T/$name-a.out" 2>&1 || { bad "$name: the uninterrupted run failed: $(tail -n 1 "$T/$name-a.out")"; return; }
    "$@" --out "$T/$name-b" --log-steps "$T/$name-b.log" --save-every 4 --stop-after "$stop" >"$T/$name-b.out" 2>&1 \
        || { bad "$name: the interrupted run failed: $(tail -n 1 "$T/$name-b.out")"; return; }
    "$@" --out "$T/$name-b" --log-steps "$T/$name-b2.log" --save-every 4 --resume "$T/$name-b/checkpoint.safetensors" >"$T/$name-b2.out" 2>&1 \
        || { bad "$name: the resumed run failed: $(tail -n 1 "$T/$name-b2.out")"; return; }
    local first total
    first=$(head -n 1 "$T/$name-b2.log" | cut -d, -f1)
    total=$(wc -l < "$T/$name-a.log")
    if [ "$first" -ge 2 ] && [ "$first" -le "$stop" ] && [ "$total" -gt "$stop" ] &&
       cmp -s <(cat "$T/$name-b.log" "$T/$name-b2.log" | sort -t, -k1,1n -u) "$T/$name-a.log" &&
       [ "$(wc -l < "$T/$name-b2.log")" -eq $((total - first + 1)) ]; then
        ok; echo "  $name: stopped after step $stop, resumed at step $first: $total per-step losses bit-identical"
    else
        bad "$name: resumed losses differ from the uninterrupted run's (resumed at step '$first', $total steps)"
    fi
    if cmp -s "$T/$name-a/metrics.csv" "$T/$name-b/metrics.csv" 2>/dev/null || \
       diff <(cut -d, -f1-5 "$T/$name-a/metrics.csv") <(cut -d, -f1-5 "$T/$name-b/metrics.csv") >/dev/null; then ok
    else bad "$name: metrics.csv differs between the uninterrupted and the resumed run"; fi
}

# ---- UNet on the generated set (always available) ----
UA=(train --synthetic 40 --size 32 --width 4 --depth 2 --epochs 3 --batch 8)
if [ -x "$U" ]; then
    check_resume unet 7 "$U" "${UA[@]}"
    # NaN guard: gradients poisoned at step 5, checked every 100 steps and before each checkpoint
    "$U" "${UA[@]}" --out "$T/nan" --save-every 2 --check-every 100 --poison-step 5 >"$T/nan.out" 2>"$T/nan.err"; rc=$?
    last=$(tr '\r' '\n' < "$T/nan.err" | grep -v '^$' | tail -n 1)
    if [ $rc -eq 1 ] && [[ $last == "unet_pets: step 6: the gradients' global norm is nan"* ]] && [ "$(ckpt_step "$T/nan/checkpoint.safetensors")" = 4 ]; then
        ok; echo "  NaN guard: '$last' (checkpoint of step 4 kept)"
    else bad "NaN guard: exit $rc, '$last', checkpoint step '$(ckpt_step "$T/nan/checkpoint.safetensors" 2>/dev/null)'"; fi
    # resuming with other flags is refused
    "$U" "${UA[@]}" --lr 0.01 --out "$T/unet-b" --resume "$T/unet-b/checkpoint.safetensors" >/dev/null 2>"$T/mis.err"; rc=$?
    if [ $rc -eq 1 ] && grep -q "give the same flags" "$T/mis.err"; then ok; else bad "resume with other flags: exit $rc, $(cat "$T/mis.err")"; fi
    # --init: a run started from a trained model's weights (at a learning rate too small to move
    # them) validates as that model does; the same run from scratch does not
    acc() { grep -o 'pixel acc [0-9.]*' "$1" | tail -n 1 | grep -o '[0-9.]*$'; }
    "$U" "${UA[@]}" --epochs 20 --lr 1e-2 --out "$T/i0" >"$T/i0.out" 2>/dev/null \
        && "$U" "${UA[@]}" --epochs 1 --lr 1e-12 --init "$T/i0/checkpoint.safetensors" --out "$T/i1" >"$T/i1.out" 2>/dev/null \
        && "$U" "${UA[@]}" --epochs 1 --lr 1e-12 --out "$T/i2" >"$T/i2.out" 2>/dev/null; rc=$?
    a0=$(acc "$T/i0.out"); a1=$(acc "$T/i1.out"); a2=$(acc "$T/i2.out")
    if [ $rc -eq 0 ] && grep -q "^initialised from $T/i0/checkpoint.safetensors (epoch 20 of a 32x32 ce run)" "$T/i1.out" &&
       awk -v a="$a0" -v b="$a1" -v c="$a2" 'BEGIN { d = a - b; exit !(a > 0.7 && d < 0.02 && d > -0.02 && a - c > 0.2) }'; then
        ok; echo "  --init: pixel accuracy $a1 after an epoch at lr 1e-12 from a model at $a0 (from scratch: $a2)"
    else bad "--init (exit $rc): pixel accuracy '$a1' from a model at '$a0', from scratch '$a2'"; fi
else
    bad "$U is missing (make $U)"
fi

# ---- eval on the real pets: the training's last validation numbers come back, with and without
#      the test-time flip, which changes them but not the training ----
PETS=
for d in data/oxford-pets ../shared/data/oxford-pets; do [ -f "$d/annotations/trainval.txt" ] && PETS=$d && break; done
if [ -z "$PETS" ]; then
    echo "SKIP unet_pets eval test: neither data/oxford-pets nor ../shared/data/oxford-pets is there"
elif [ -x "$U" ]; then
    PA=(train --data "$PETS" --limit 40 --val-frac 0.3 --size 32 --width 4 --depth 2 --epochs 2 --batch 8)
    vals() { grep -o 'pet IoU [0-9.]*  mIoU [0-9.]*  pixel acc [0-9.]*' "$1" | tail -n 1; }
    losses() { grep -o 'train loss [0-9.]*' "$1"; }
    "$U" "${PA[@]}" --out "$T/p0" >"$T/p0.out" 2>/dev/null && "$U" "${PA[@]}" --tta 1 --out "$T/p1" >"$T/p1.out" 2>/dev/null \
        && "$U" eval --ckpt "$T/p0/checkpoint.safetensors" --data "$PETS" --list "$T/p0/split_val.txt" >"$T/e0.out" \
        && "$U" eval --ckpt "$T/p1/checkpoint.safetensors" --data "$PETS" --list "$T/p0/split_val.txt" --tta 1 >"$T/e1.out"; rc=$?
    if [ $rc -eq 0 ] && [ -n "$(vals "$T/p0.out")" ] && [ "$(vals "$T/p0.out")" = "$(vals "$T/e0.out")" ] &&
       [ "$(vals "$T/p1.out")" = "$(vals "$T/e1.out")" ] && grep -q '^eval (flip TTA)' "$T/e1.out"; then
        ok; echo "  eval gives back the training's last validation numbers: $(vals "$T/e0.out"); flip TTA: $(vals "$T/e1.out")"
    else bad "eval vs training's validation (exit $rc): '$(vals "$T/p0.out")' / '$(vals "$T/e0.out")', TTA '$(vals "$T/p1.out")' / '$(vals "$T/e1.out")'"; fi
    if [ "$(losses "$T/p0.out")" = "$(losses "$T/p1.out")" ] && [ "$(vals "$T/e0.out")" != "$(vals "$T/e1.out")" ]; then ok
    else bad "--tta must leave the training as it is and change the validation numbers"; fi
    # --eval-size: inputs loaded at 48x48, logits resized to the model's 32x32; eval gives back the
    # training's numbers, leaves the training as it is, and at the model's own size changes nothing;
    # a list of sizes (32,48) averages the resized logits, in training's validation as in eval
    "$U" "${PA[@]}" --eval-size 48 --out "$T/p2" >"$T/p2.out" 2>/dev/null \
        && "$U" eval --ckpt "$T/p2/checkpoint.safetensors" --data "$PETS" --list "$T/p0/split_val.txt" --eval-size 48 >"$T/e2.out" \
        && "$U" eval --ckpt "$T/p0/checkpoint.safetensors" --data "$PETS" --list "$T/p0/split_val.txt" --eval-size 32 >"$T/e3.out"; rc=$?
    if [ $rc -eq 0 ] && [ -n "$(vals "$T/p2.out")" ] && [ "$(vals "$T/p2.out")" = "$(vals "$T/e2.out")" ] &&
       grep -q '^eval (inputs 48x48)' "$T/e2.out" && [ "$(losses "$T/p0.out")" = "$(losses "$T/p2.out")" ] &&
       [ "$(vals "$T/e2.out")" != "$(vals "$T/e0.out")" ] && [ "$(vals "$T/e3.out")" = "$(vals "$T/e0.out")" ]; then
        ok; echo "  --eval-size 48: $(vals "$T/e2.out") (training's own: $(vals "$T/p2.out"))"
    else bad "--eval-size (exit $rc): train '$(vals "$T/p2.out")', eval '$(vals "$T/e2.out")', at 32 '$(vals "$T/e3.out")' vs '$(vals "$T/e0.out")'"; fi
    "$U" "${PA[@]}" --tta 1 --eval-size 32,48 --out "$T/p3" >"$T/p3.out" 2>/dev/null \
        && "$U" eval --ckpt "$T/p3/checkpoint.safetensors" --data "$PETS" --list "$T/p0/split_val.txt" --tta 1 --eval-size 32,48 >"$T/e4.out"; rc=$?
    if [ $rc -eq 0 ] && [ -n "$(vals "$T/p3.out")" ] && [ "$(vals "$T/p3.out")" = "$(vals "$T/e4.out")" ] &&
       grep -q '^eval (flip TTA, inputs 32x32 + 48x48)' "$T/e4.out" && [ "$(losses "$T/p0.out")" = "$(losses "$T/p3.out")" ]; then
        ok; echo "  --tta 1 --eval-size 32,48: $(vals "$T/e4.out")"
    else bad "--eval-size 32,48 (exit $rc): train '$(vals "$T/p3.out")', eval '$(vals "$T/e4.out")'"; fi
fi

# ---- CVAE on Fashion-MNIST (Debian's dataset-fashion-mnist) ----
FASHION=/usr/share/datasets/fashion-mnist
if [ ! -d "$FASHION" ]; then
    echo "SKIP cvae resume test: $FASHION not found (apt-get install dataset-fashion-mnist)"
elif [ -x "$V" ]; then
    check_resume cvae 13 "$V" --dataset fashion --data "$FASHION" --limit 320 --batch 32 --epochs 2 --judge-epochs 1 \
        --judge-width 4 --teacher-width 4 --width 8 --label-loss 1
else
    bad "$V is missing (make $V)"
fi

# ---- bad command lines: one line on stderr, exit status 1 ----
printf 'not a checkpoint' > "$T/junk.safetensors"
bad_cli() {   # expected stderr substring, command...
    local want=$1; shift
    "$@" >"$T/cli.out" 2>"$T/cli.err"; local rc=$?
    local lines; lines=$(grep -c '' "$T/cli.err")
    if [ $rc -eq 1 ] && [ "$lines" -eq 1 ] && grep -q -- "$want" "$T/cli.err"; then ok
    else bad "'$*': want exit 1 and one line with '$want', got exit $rc and $lines line(s): $(head -c 300 "$T/cli.err")"; fi
}
if [ -x "$U" ]; then
    bad_cli "missing command" "$U"
    bad_cli "unknown command 'frobnicate'" "$U" frobnicate
    bad_cli "unknown flag '--bogus'" "$U" train --bogus 1
    bad_cli "--size needs a value" "$U" train --size
    bad_cli "--epochs: '-3' is not an integer" "$U" train --epochs -3
    bad_cli "--lr: 'abc' is not a number" "$U" train --lr abc
    bad_cli "--width: '99999999999999999999' is not an integer" "$U" train --width 99999999999999999999
    bad_cli "--data '$T/nowhere'" "$U" train --data "$T/nowhere"
    bad_cli "--size 30 is not divisible" "$U" train --synthetic 8 --size 30
    bad_cli "needs --ckpt" "$U" eval
    bad_cli "--ckpt '$T/nowhere.safetensors'" "$U" eval --data "$T" --list "$T/junk.safetensors" --ckpt "$T/nowhere.safetensors"
    bad_cli "junk.safetensors" "$U" train --synthetic 8 --size 16 --depth 2 --width 2 --batch 2 --out "$T/j" --resume "$T/junk.safetensors"
    bad_cli "--device cuda needs the GPU build" "$U" train --device cuda
    bad_cli "junk.safetensors" "$U" train --synthetic 8 --size 16 --depth 2 --width 2 --batch 2 --out "$T/j" --init "$T/junk.safetensors"
    bad_cli "it is a width 4 depth 2 maxpool/transpose model with a 3-class head, but this run asks for width 8 depth 2 maxpool/transpose" \
        "$U" "${UA[@]}" --width 8 --out "$T/j" --init "$T/unet-a/checkpoint.safetensors"
    bad_cli "with a 1-class head" "$U" "${UA[@]}" --loss bce --out "$T/j" --init "$T/unet-a/checkpoint.safetensors"
    bad_cli "--eval-size 30 is not divisible by 2^depth = 4" "$U" train --synthetic 8 --size 16 --depth 2 --eval-size 30
    bad_cli "--eval-size: size 32 given twice" "$U" train --synthetic 8 --size 16 --depth 2 --eval-size 32,48,32
    bad_cli "--eval-size: at most 4 sizes" "$U" train --synthetic 8 --size 16 --depth 2 --eval-size 16,20,24,28,32
    bad_cli "--eval-size: '32,' is not a size" "$U" train --synthetic 8 --size 16 --depth 2 --eval-size 32,
    bad_cli "--eval-size needs real images" "$U" train --synthetic 8 --size 16 --depth 2 --width 2 --batch 2 --eval-size 24 --out "$T/j2"
    mkdir -p "$T/ann/annotations" && : > "$T/ann/annotations/trainval.txt"
    [ -f "$T/unet-a/checkpoint.safetensors" ] && bad_cli "--eval-size 30 is not divisible by 2^depth = 4 (the checkpoint's depth)" \
        "$U" eval --data "$T/ann" --ckpt "$T/unet-a/checkpoint.safetensors" --eval-size 30
fi
if [ -x "$V" ]; then
    bad_cli "unknown flag '--bogus'" "$V" --bogus 1
    bad_cli "--epochs needs a value" "$V" --epochs
    bad_cli "--batch: bad value '1'" "$V" --batch 1
    bad_cli "--dataset: bad value 'svhn'" "$V" --dataset svhn
    bad_cli "missing data" "$V" --data "$T/nowhere"
    bad_cli "--lr: bad value 'nan'" "$V" --lr nan
    bad_cli "--device cuda needs the GPU build" "$V" --device cuda
    bad_cli "unexpected argument 'extra'" "$V" extra
fi

echo "examples: $pass passed, $fail failed"
[ $fail -eq 0 ]

#!/usr/bin/env bash
# tests/test_cuemu.sh — the examples' GPU path (--device cuda) under the CUDA emulator
# (tests/cuemu), against the same runs on the CPU (run by `make test-cuda-emu`):
#   - the emulator's self-test (tests/cuemu/selftest.cu): what it must compute, and what it must
#     stop with a message;
#   - unet_pets, each of the four variants, on its generated set: the per-step training losses and
#     the validation metrics of every epoch agree with the CPU run's (relative 1e-4; the kernels
#     sum in other orders than the CPU, so not bit for bit);
#   - on the real Oxford-IIIT Pet (SKIP without ../shared/data): eval --device cuda and --device cpu
#     of a GPU-trained checkpoint give the training's last validation numbers;
#   - cvae on a slice of Fashion-MNIST (Debian's dataset-fashion-mnist; SKIP without it): the
#     per-step losses of a GPU run (judge, CVAE, evaluation all on the device) as on the CPU;
#   - without a device (CUEMU_DEVICES=0) an example says "no CUDA device" and exits 1.
# Usage: tests/test_cuemu.sh [BUILD_DIR]   (needs BUILD_DIR/cuemu_selftest, unet_pets{,_emu}, cvae{,_emu})
set -u
B=${1:-build}
T=$(mktemp -d /tmp/uvt_cuemu.XXXXXX)
trap 'rm -rf "$T"' EXIT
pass=0 fail=0
ok()  { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

# Two files of comma-separated numbers agree, line by line, in fields $3..$4 ($4 = 0: to the last):
# |a - b| <= 1e-4 max(|a|, |b|, 1e-3). Prints the worst relative difference; fails on a mismatch
# of shape or value.
agree() {
    paste -d'|' "$1" "$2" | awk -F'|' -v from="$3" -v to="$4" '
        { n = split($1, a, ","); m = split($2, b, ",")
          if (n != m) { bad = 1; exit }
          for (i = from; i <= (to > 0 ? to : n); i++) {
              d = a[i] - b[i]; if (d < 0) d = -d
              s = a[i] < 0 ? -a[i] : a[i]; t = b[i] < 0 ? -b[i] : b[i]; if (t > s) s = t; if (s < 1e-3) s = 1e-3
              if (d / s > worst) worst = d / s
          } }
        END { if (bad || NR == 0) { print "shape"; exit 1 } printf "%.2g\n", worst; exit worst > 1e-4 }'
}
# the validation numbers of a metrics.csv row (fields 3-6) as eval prints them
eval_line() { cut -d, -f3-6 | awk -F, '{printf "pet IoU %.4f  mIoU %.4f  pixel acc %.4f  Dice %.4f", $1, $2, $3, $4}'; }

# ---- the emulator's own checks (tests/cuemu/selftest.cu) ----
f0=$fail
for c in "sum:sum ok" "race:race seen" "config:invalid configuration" "uninit:uninit seen" "stale:stale seen" \
         "hostptr:is not device memory" "sync:wait at __syncthreads" "shfl:of warp 0's 32 lanes" \
         "memcpy:not inside one device allocation"; do
    case_=${c%%:*} want=${c#*:}
    { "$B/cuemu_selftest" "$case_" >"$T/self.out" 2>&1; } 2>/dev/null; rc=$?   # (no "Aborted" from bash)
    case $case_ in sum|race|config|uninit|stale) wrc=0 ;; *) wrc=134 ;; esac   # 134: stopped (abort)
    if [ $rc -eq $wrc ] && grep -q "$want" "$T/self.out"; then ok
    else bad "emulator self-test '$case_': want exit $wrc and '$want', got exit $rc: $(head -c 300 "$T/self.out")"; fi
done
# a read of the previous thread's store without the barrier: hidden by the forward order, seen in
# reverse (CUEMU_ORDER=reverse: blocks, and threads between barriers, last first; make
# test-cuda-emu runs the GPU suite both ways)
for o in "forward:1:race NOT seen" "reverse:0:race seen"; do
    IFS=: read -r order wrc want <<< "$o"
    CUEMU_ORDER=$order "$B/cuemu_selftest" race-prev >"$T/self.out" 2>&1; rc=$?
    if [ $rc -eq "$wrc" ] && grep -q "$want" "$T/self.out"; then ok
    else bad "emulator self-test 'race-prev' in $order order: want exit $wrc and '$want', got exit $rc: $(head -c 300 "$T/self.out")"; fi
done
[ $fail -eq $f0 ] && echo "  emulator self-test: a reduction, a race without its barrier (either order), a bad launch, uninitialised device and shared memory seen; a host pointer, divergent barrier and shuffle, wrong copy stopped"

# ---- unet_pets: the four variants ----
for v in "maxpool transpose ce" "maxpool transpose dice" "strided transpose ce" "strided upsample ce+dice"; do
    set -- $v
    name="$1+$2+$3"
    A=(train --synthetic 24 --size 16 --width 4 --depth 2 --epochs 2 --batch 4 --tta 1 --down "$1" --up "$2" --loss "$3")
    "$B/unet_pets" "${A[@]}" --device cpu --out "$T/cpu" --log-steps "$T/cpu.log" >"$T/cpu.out" 2>&1 \
        || { bad "unet $name: the CPU run failed: $(tail -n 1 "$T/cpu.out")"; continue; }
    "$B/unet_pets_emu" "${A[@]}" --device cuda --out "$T/gpu" --log-steps "$T/gpu.log" >"$T/gpu.out" 2>&1 \
        || { bad "unet $name: the emulated GPU run failed: $(tail -n 1 "$T/gpu.out")"; continue; }
    if w1=$(agree "$T/cpu.log" "$T/gpu.log" 2 0) && w2=$(agree <(tail -n +2 "$T/cpu/metrics.csv") <(tail -n +2 "$T/gpu/metrics.csv") 2 6); then
        ok; echo "  unet $name: $(wc -l < "$T/gpu.log") step losses and 2 epochs' validation as on the CPU (worst relative difference $w1, $w2)"
    else bad "unet $name: the emulated GPU run differs from the CPU run (steps: ${w1:-?}, metrics: ${w2:-?})"; fi
    rm -rf "$T/cpu" "$T/gpu" "$T"/*.log
done

# ---- unet_pets eval --device cuda on the real Oxford-IIIT Pet (checkpoint moved to the device) ----
PETS=${PETS:-../shared/data/oxford-pets}
if [ ! -d "$PETS/images" ]; then
    echo "SKIP unet eval under the emulator: $PETS not found"
else
    R=(--data "$PETS" --batch 4 --tta 1)
    if "$B/unet_pets_emu" train "${R[@]}" --size 16 --width 4 --depth 2 --limit 40 --epochs 1 --device cuda --out "$T/real" >"$T/real.out" 2>&1; then
        want=$(tail -n 1 "$T/real/metrics.csv" | eval_line)
        "$B/unet_pets_emu" eval --ckpt "$T/real/checkpoint.safetensors" "${R[@]}" --list "$T/real/split_val.txt" --device cuda >"$T/eg.out" 2>&1
        "$B/unet_pets" eval --ckpt "$T/real/checkpoint.safetensors" "${R[@]}" --list "$T/real/split_val.txt" --device cpu >"$T/ec.out" 2>&1
        if grep -q "$want" "$T/eg.out" && grep -q "$want" "$T/ec.out"; then
            ok; echo "  unet eval --device cuda and --device cpu of the GPU-trained checkpoint: '$want', as its training's validation"
        else bad "unet eval: want '$want', got '$(tail -n 1 "$T/eg.out")' (cuda), '$(tail -n 1 "$T/ec.out")' (cpu)"; fi
    else bad "unet eval: the emulated training run failed: $(tail -n 1 "$T/real.out")"; fi
fi

# ---- cvae on a slice of Fashion-MNIST (128 training, 64 test images) ----
FASHION=/usr/share/datasets/fashion-mnist
# IDX slice: the first n records of a .gz IDX file (header of hdr bytes, count at bytes 4..7)
idx_slice() {   # src.gz dst n record_bytes hdr
    { zcat "$1" | head -c 4
      printf "\\x$(printf %02x $(($3 >> 24 & 255)))\\x$(printf %02x $(($3 >> 16 & 255)))\\x$(printf %02x $(($3 >> 8 & 255)))\\x$(printf %02x $(($3 & 255)))"
      zcat "$1" | tail -c +9 | head -c $(($5 - 8 + $3 * $4)); } > "$2"
}
if [ ! -d "$FASHION" ]; then
    echo "SKIP cvae under the emulator: $FASHION not found (apt-get install dataset-fashion-mnist)"
else
    F=$T/fashion; mkdir -p "$F"
    idx_slice "$FASHION/train-images-idx3-ubyte.gz" "$F/train-images-idx3-ubyte" 128 784 16
    idx_slice "$FASHION/train-labels-idx1-ubyte.gz" "$F/train-labels-idx1-ubyte" 128 1 8
    idx_slice "$FASHION/t10k-images-idx3-ubyte.gz" "$F/t10k-images-idx3-ubyte" 64 784 16
    idx_slice "$FASHION/t10k-labels-idx1-ubyte.gz" "$F/t10k-labels-idx1-ubyte" 64 1 8
    C=(--dataset fashion --data "$F" --batch 32 --epochs 2 --judge-epochs 1 --width 8 --latent 8 --judge-width 8)
    if "$B/cvae" "${C[@]}" --device cpu --out "$T/vc" --log-steps "$T/vc.log" >"$T/vc.out" 2>&1 &&
       "$B/cvae_emu" "${C[@]}" --device cuda --out "$T/vg" --log-steps "$T/vg.log" >"$T/vg.out" 2>&1; then
        if w=$(agree "$T/vc.log" "$T/vg.log" 2 0); then
            ok; echo "  cvae fashion: $(wc -l < "$T/vg.log") step losses as on the CPU (worst relative difference $w)"
        else bad "cvae: the emulated GPU run's step losses differ from the CPU run's (${w:-?})"; fi
    else bad "cvae: a run failed: $(tail -n 1 "$T/vc.out") / $(tail -n 1 "$T/vg.out" 2>/dev/null)"; fi
fi

# ---- no device ----
CUEMU_DEVICES=0 "$B/unet_pets_emu" train --synthetic 8 --size 16 --depth 2 --device cuda --out "$T/nodev" >/dev/null 2>"$T/nodev.err"; rc=$?
if [ $rc -eq 1 ] && [ "$(wc -l < "$T/nodev.err")" -eq 1 ] && grep -q "no CUDA device" "$T/nodev.err"; then
    ok; echo "  no device: '$(cat "$T/nodev.err")' (exit 1)"
else bad "no device: exit $rc, '$(head -c 300 "$T/nodev.err")'"; fi

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]

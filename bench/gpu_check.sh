#!/usr/bin/env bash
# bench/gpu_check.sh — a GPU session's checks in one script that fits one device call (the stages'
# time limits add up to 575 s, under the 600 s of a call):
#   1. builds the CUDA targets (test_cuda, bench_cuda, unet_pets_cuda, cvae_cuda),
#   2. build/test_cuda: every op, loss and model step on the GPU against the CPU (its closing line
#      and the largest error per op go to the summary),
#   3. make bench-cuda-vs-torch: our GPU rows, then PyTorch's in fp32 and TF32, and the ratios;
#      then our rows again with the GEMMs in TF32 (bench --tf32), and with the convolutions as the
#      first kernels did them, im2col + GEMM per image (bench --conv-im2col --only unet: the A/B of
#      implicit GEMM),
#   4. with the data in .devdata/ (../shared/tools/devdata.sh mnist oxford-pets, run here before
#      the device call, which then carries .devdata): a short UNet and a short CVAE run on the GPU.
# Each stage has its own time limit and log in OUT (default $OUT when set, else runs/gpu);
# the summary (stdout, and OUT/summary.txt) has each stage's exit status, time and last lines.
#   device: bash bench/gpu_check.sh        (STAGES="build test" runs only those; TORCH_PY=python3)
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/gpu}
STAGES=${STAGES:-build test bench bench-tf32 bench-im2col unet cvae}
TORCH_PY=${TORCH_PY:-python3}
export PATH="$PATH:/usr/local/cuda/bin"
mkdir -p "$OUT" || exit 1
exec > >(tee "$OUT/summary.txt") 2>&1

# stage NAME LIMIT_S LINES CMD...: CMD under `timeout`, its output in OUT/NAME.log; prints the exit
# status (124: over the limit), the seconds it took and the log's last LINES lines
stage() {
    local name=$1 limit=$2 lines=$3 t0 rc
    shift 3
    case " $STAGES " in *" $name "*) ;; *) echo "== $name: skipped (STAGES=\"$STAGES\")"; return 0 ;; esac
    t0=$(date +%s)
    timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
    rc=$?
    echo "== $name: exit $rc after $(($(date +%s) - t0)) s (limit $limit s): $*"
    tail -n "$lines" "$OUT/$name.log" | sed 's/^/   /'
}

echo "gpu_check: $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), logs in $OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | sed 's/^/gpu: /'
command -v nvcc >/dev/null && nvcc --version | tail -n 1 | sed 's/^/nvcc: /'
"$TORCH_PY" -c 'import torch; print("torch:", torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available())' 2>&1

# machine code for this GPU (HOPPER.md: without -arch, nvcc embeds PTX for an older target)
cc=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n 1 | tr -d ' .')
export NVCCFLAGS=${NVCCFLAGS:-${cc:+-arch=sm_$cc}}
echo "NVCCFLAGS=$NVCCFLAGS"
stage build 120 3 make -j"$(nproc)" build/test_cuda build/bench_cuda build/unet_pets_cuda build/cvae_cuda
stage test 90 4 ./build/test_cuda
[ -f "$OUT/test.log" ] && grep -E '^  (op |ops:|model |training|tf32)' "$OUT/test.log" | sed 's/^/   /'   # per op: its largest nmse
stage bench 180 40 make bench-cuda-vs-torch TORCH_PY="$TORCH_PY"
cp build/torch_bench_fp32.txt build/torch_bench_tf32.txt "$OUT/" 2>/dev/null
t=; for f in fp32 tf32; do grep -qs " batch " "build/torch_bench_$f.txt" && t="$t --torch build/torch_bench_$f.txt"; done
# shellcheck disable=SC2086  # $t: the --torch options, split on purpose
stage bench-tf32 60 40 ./build/bench_cuda --device cuda --tf32 --steps 10 $t
# shellcheck disable=SC2086
stage bench-im2col 45 40 ./build/bench_cuda --device cuda --conv-im2col --only unet --steps 5 $t
if [ -d .devdata/oxford-pets ]; then
    stage unet 45 3 ./build/unet_pets_cuda train --device cuda --data .devdata/oxford-pets --size 128 --width 64 --depth 4 \
        --epochs 3 --batch 16 --lr 1e-3 --seed 1 --out "$OUT/unet"
else echo "== unet: SKIP (no .devdata/oxford-pets: run ../shared/tools/devdata.sh oxford-pets and carry .devdata)"; fi
if [ -d .devdata/mnist ]; then
    stage cvae 35 3 ./build/cvae_cuda --device cuda --dataset mnist --data .devdata/mnist --epochs 1 --judge-epochs 1 --out "$OUT/cvae"
else echo "== cvae: SKIP (no .devdata/mnist: run ../shared/tools/devdata.sh mnist and carry .devdata)"; fi
echo "gpu_check: done $(date -u '+%H:%M:%S UTC')"

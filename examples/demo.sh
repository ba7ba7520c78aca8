#!/usr/bin/env bash
# examples/demo.sh — `make demo`: the first run on a fresh Debian machine, about 70 s on 2 cores.
#   1. Looks for what it needs: a C compiler, stb's headers (libstb-dev) and Fashion-MNIST
#      (dataset-fashion-mnist). As root it installs what is missing with apt-get; otherwise it
#      prints the one apt line to run and stops.
#   2. Builds the two examples (the GPU build with nvcc when CUDA=1).
#   3. Trains a conditional VAE on Fashion-MNIST and draws its mismatched-label grid: 25 test
#      images, each redrawn as another class, every output captioned "true->given".
#   4. Trains a small UNet on Oxford-IIIT Pet when data/oxford-pets is there (`make data`), else on
#      a synthetic segmentation set that unet_pets generates itself (--synthetic: ellipse "pets"
#      with a border ring on textured backgrounds; not real photographs).
#   5. Prints the pictures' paths and the numbers.
# Environment (all optional):
#   CUDA=1          the GPU build and --device cuda (needs nvcc and a GPU)
#   DEMO_QUICK=1    tiny settings, a few seconds: the test suite's run (tests/test_demo.sh)
#   DEMO_OUT=DIR    output folder                                   [runs/demo]
#   BUILD=DIR       build folder                                    [build]
#   DEMO_PETS=DIR   Oxford-IIIT Pet folder                          [data/oxford-pets]
#   DEMO_FASHION=DIR  Fashion-MNIST folder                          [/usr/share/datasets/fashion-mnist]
#   DEMO_NO_INSTALL=1 never run apt-get, even as root (print the line instead)
set -uo pipefail
cd "$(dirname "$0")/.."

OUT=${DEMO_OUT:-runs/demo}
BUILD=${BUILD:-build}
PETS=${DEMO_PETS:-data/oxford-pets}
FASHION=${DEMO_FASHION:-/usr/share/datasets/fashion-mnist}
QUICK=${DEMO_QUICK:-0}
CUDA=${CUDA:-0}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc 2>/dev/null || echo 2)}
t0=$(date +%s)

fail() { echo "demo: $*" >&2; exit 1; }

# ---- 1. what a fresh machine lacks -------------------------------------------------------------
need=()
command -v cc >/dev/null 2>&1 || need+=(build-essential)
[ -f /usr/include/stb/stb_image.h ] || need+=(libstb-dev)
[ -d "$FASHION" ] || need+=(dataset-fashion-mnist)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ] && [ "${DEMO_NO_INSTALL:-0}" != 1 ] && command -v apt-get >/dev/null 2>&1; then
        echo "demo: installing ${need[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -q "${need[@]}" || { apt-get update -q && apt-get install -y -q "${need[@]}"; } ||
            fail "apt-get could not install ${need[*]}"
        [ -d "$FASHION" ] || fail "Fashion-MNIST is still not in $FASHION after installing dataset-fashion-mnist"
    else
        echo "demo: missing ${need[*]}; install them, then run make demo again:" >&2
        echo "  sudo apt-get install -y ${need[*]}" >&2
        exit 1
    fi
fi

# ---- 2. build ----------------------------------------------------------------------------------
if [ "$CUDA" = 1 ]; then
    command -v "${NVCC:-nvcc}" >/dev/null 2>&1 || fail "CUDA=1 needs nvcc on PATH (the CUDA toolkit; often /usr/local/cuda/bin)"
    CVAE=$BUILD/cvae_cuda UNET=$BUILD/unet_pets_cuda DEV=cuda
else
    CVAE=$BUILD/cvae UNET=$BUILD/unet_pets DEV=cpu
fi
make --no-print-directory BUILD="$BUILD" "$CVAE" "$UNET" || fail "the build failed (see above)"

# ---- 3. the CVAE on Fashion-MNIST ----------------------------------------------------------------
# The full recipe (README) trains for ~30 minutes; here a short one: 12 000 training images, two
# epochs, the label in every decoder stage and a label loss from a small teacher classifier.
if [ "$QUICK" = 1 ]; then
    cvae_flags=(--limit 1000 --epochs 1 --judge-epochs 1 --judge-width 8 --teacher-width 8 --width 8 --latent 8)
else
    cvae_flags=(--limit 12000 --epochs 2 --judge-epochs 1 --label-loss 3 --cond-planes 4)
fi
mkdir -p "$OUT" || fail "cannot create $OUT"
echo "demo: [1/2] conditional VAE on Fashion-MNIST ($FASHION), device $DEV"
"$CVAE" --dataset fashion --data "$FASHION" --device "$DEV" "${cvae_flags[@]}" --out "$OUT/cvae" 2>&1 |
    tee "$OUT/cvae.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || fail "the CVAE run failed: $(tail -n 1 "$OUT/cvae.log" | tr '\r' '\n' | tail -n 1)"

# ---- 4. the UNet -------------------------------------------------------------------------------
if [ -f "$PETS/annotations/trainval.txt" ]; then
    unet_data=(--data "$PETS") unet_set="Oxford-IIIT Pet ($PETS, 20 % of its trainval list held out)"
else
    n=400; [ "$QUICK" = 1 ] && n=48
    unet_data=(--synthetic $n)
    unet_set="a synthetic set of $n generated images ($PETS not found: make data fetches Oxford-IIIT Pet)"
fi
if [ "$QUICK" = 1 ]; then
    unet_flags=(--size 32 --width 4 --depth 2 --epochs 1 --batch 8)
else
    unet_flags=(--size 64 --width 16 --depth 3 --epochs 12 --batch 8 --lr 3e-3)
fi
echo "demo: [2/2] UNet on $unet_set, device $DEV"
"$UNET" train "${unet_data[@]}" --device "$DEV" "${unet_flags[@]}" --out "$OUT/unet" 2>&1 | tee "$OUT/unet.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || fail "the UNet run failed: $(tail -n 1 "$OUT/unet.log" | tr '\r' '\n' | tail -n 1)"

# ---- 5. what came out --------------------------------------------------------------------------
png_size() {   # "W x H" of a PNG, from its IHDR chunk; nothing if the file is not a PNG
    [ "$(head -c 8 "$1" 2>/dev/null | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] || return 1
    od -An -tu4 --endian=big -j16 -N8 "$1" | awk '{print $1 " x " $2}'
}
pics=("$OUT/cvae/mismatched.png:25 test images redrawn as another class, captioned true->given"
      "$OUT/cvae/samples.png:samples, one row per class"
      "$OUT/cvae/recon.png:inputs and reconstructions"
      "$OUT/cvae/curves.png:CVAE loss per epoch"
      "$OUT/unet/predictions.png:image | truth | prediction"
      "$OUT/unet/curves.png:UNet loss and IoU per epoch")
cvae_line=$(tr '\r' '\n' < "$OUT/cvae.log" | grep '^test loss' | tail -n 1)
unet_line=$(tr '\r' '\n' < "$OUT/unet.log" | grep '^summary:' | tail -n 1)
[ -n "$cvae_line" ] || fail "no result line in $OUT/cvae.log"
[ -n "$unet_line" ] || fail "no summary line in $OUT/unet.log"
echo
echo "demo done in $(( $(date +%s) - t0 )) s (device $DEV$([ "$QUICK" = 1 ] && echo ', DEMO_QUICK=1: tiny settings'))"
echo "pictures:"
for p in "${pics[@]}"; do
    f=${p%%:*}
    sz=$(png_size "$f") || fail "$f is missing or not a PNG"
    printf '  %-34s %-12s %s\n' "$f" "$sz" "${p#*:}"
done
echo "numbers:"
echo "  CVAE (Fashion-MNIST): $(printf '%s' "$cvae_line" | sed 's/ | [0-9.]* s$//')"
echo "  UNet: $(printf '%s' "$unet_line" | sed 's/^summary: //; s/ | [^|]*$//')"
echo "  per-epoch numbers: $OUT/cvae/metrics.csv, $OUT/unet/metrics.csv; logs: $OUT/cvae.log, $OUT/unet.log"

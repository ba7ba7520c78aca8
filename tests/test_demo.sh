#!/usr/bin/env bash
# tests/test_demo.sh — `make demo` as a user meets it (run by `make test`):
#   - DEMO_QUICK=1 runs end to end (CVAE on Fashion-MNIST, UNet on the synthetic set, and on
#     Oxford-IIIT Pet when ../shared/data or data/ has it), exits 0, and every picture it names is
#     a PNG of the size its layout gives;
#   - a machine without a dependency gets the one apt line and exit status 1 (not root, or
#     DEMO_NO_INSTALL=1), and CUDA=1 without nvcc says so.
# Usage: tests/test_demo.sh [BUILD_DIR]. Needs Debian's dataset-fashion-mnist (else SKIP).
set -u
cd "$(dirname "$0")/.."
B=${1:-build}
T=$(mktemp -d /tmp/uvt_demo.XXXXXX)
trap 'rm -rf "$T"' EXIT
pass=0 fail=0
ok()  { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

png_wh() { [ "$(head -c 8 "$1" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] && od -An -tu4 --endian=big -j16 -N8 "$1" | awk '{print $1 "x" $2}'; }
# expected sizes, from the layouts: uvae_grid_png (gap 4, caption 12, title 14) with 10 columns of
# 28x28 images at scale 4; the UNet's predictions.png (3 columns, 8 rows, images scaled to >= 128)
# and the 640x400 curves.
grid_wh() { local n=$1 cw=112; echo "$((4 + 10 * (cw + 4)))x$((14 + 4 + ((n + 9) / 10) * (cw + 12 + 4)))"; }
pred_wh() { local S=$1 sc cw; sc=$(( S >= 128 ? 1 : (128 + S - 1) / S )); cw=$((S * sc)); echo "$((4 + 3 * (cw + 4)))x$((16 + 4 + 8 * (cw + 12 + 4)))"; }

check_pics() {   # out-dir, unet size
    local o=$1 S=$2 f want got
    for f in "cvae/mismatched.png:$(grid_wh 50)" "cvae/recon.png:$(grid_wh 50)" "cvae/samples.png:$(grid_wh 100)" \
             "cvae/curves.png:640x400" "unet/predictions.png:$(pred_wh "$S")" "unet/curves.png:640x400"; do
        want=${f#*:}; f=$o/${f%%:*}
        got=$(png_wh "$f" 2>/dev/null)
        if [ "$got" = "$want" ]; then ok; else bad "$f: want a ${want} PNG, got '${got:-no PNG}'"; fi
    done
}

if [ ! -d /usr/share/datasets/fashion-mnist ]; then
    echo "SKIP demo run: /usr/share/datasets/fashion-mnist is absent (apt-get install dataset-fashion-mnist)"
else
    # the quick run on the synthetic set
    if DEMO_QUICK=1 DEMO_OUT="$T/syn" DEMO_PETS="$T/no-pets" BUILD="$B" bash examples/demo.sh >"$T/syn.out" 2>&1; then
        ok
        check_pics "$T/syn" 32
        for want in "^demo done in" "mismatched.png" "CVAE (Fashion-MNIST): test loss [0-9.]* nats/image" \
                    "UNet: unet maxpool/transpose .* val pet IoU [0-9.]*" "synthetic set of 48 generated images"; do
            if grep -q -- "$want" "$T/syn.out"; then ok; else bad "demo output lacks /$want/"; fi
        done
        echo "  demo (DEMO_QUICK=1, synthetic set): $(grep '^demo done' "$T/syn.out")"
    else
        bad "DEMO_QUICK=1 make demo failed: $(tail -n 3 "$T/syn.out" | tr '\r' '\n' | tail -n 1)"
    fi
    # the quick run on real Oxford-IIIT Pet images, when there are any
    pets=""
    for d in data/oxford-pets ../shared/data/oxford-pets; do [ -f "$d/annotations/trainval.txt" ] && pets=$d && break; done
    if [ -z "$pets" ]; then
        echo "SKIP demo on Oxford-IIIT Pet: neither data/oxford-pets nor ../shared/data/oxford-pets is there"
    elif DEMO_QUICK=1 DEMO_OUT="$T/pets" DEMO_PETS="$pets" BUILD="$B" bash examples/demo.sh >"$T/pets.out" 2>&1 &&
         grep -q "UNet on Oxford-IIIT Pet" "$T/pets.out"; then
        ok
        check_pics "$T/pets" 32
        echo "  demo (DEMO_QUICK=1, $pets): $(grep '^demo done' "$T/pets.out")"
    else
        bad "DEMO_QUICK=1 make demo on $pets failed: $(tail -n 3 "$T/pets.out" | tr '\r' '\n' | tail -n 1)"
    fi
fi

# a missing dependency: the apt line, exit 1, nothing built or run
out=$(DEMO_NO_INSTALL=1 DEMO_FASHION="$T/no-fashion" DEMO_OUT="$T/missing" BUILD="$B" bash examples/demo.sh 2>&1); rc=$?
if [ $rc -eq 1 ] && printf '%s\n' "$out" | grep -q "^  sudo apt-get install -y .*dataset-fashion-mnist" && [ ! -e "$T/missing" ]; then
    ok
else
    bad "missing Fashion-MNIST: want exit 1 and the apt line, got exit $rc: $out"
fi
# CUDA=1 without nvcc on PATH: one clear line, exit 1
out=$(PATH=/usr/bin:/bin NVCC=uvae-no-such-nvcc CUDA=1 DEMO_OUT="$T/nocuda" BUILD="$B" bash examples/demo.sh 2>&1); rc=$?
if [ $rc -eq 1 ] && printf '%s\n' "$out" | grep -q "CUDA=1 needs nvcc"; then ok; else bad "CUDA=1 without nvcc: exit $rc: $out"; fi

echo "demo tests: $pass passed, $fail failed"
[ "$fail" -eq 0 ]

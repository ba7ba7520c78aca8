#!/usr/bin/env bash
# tests/test_scripts.sh — offline tests of data_scripts/ (checksums, resume, retries, mirrors, the
# failure message, unpacking) and of `make install` / `make uninstall`. No network is used: files
# come from file:// URLs, and "unreachable" is http://127.0.0.1:9/ (the discard port: nothing
# listens there, so the connection is refused at once). Run by `make test-scripts`; a few seconds.
# Prints one line per check and a closing "N passed, M failed"; exit status 1 if any failed.
# shellcheck disable=SC2016  # the conditions given to expect -c are evaluated later, on purpose
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
T=$(mktemp -d "${TMPDIR:-/tmp}/uvae_test_scripts.XXXXXX") || exit 1
HTTP_PID=
trap '[ -n "$HTTP_PID" ] && kill "$HTTP_PID" 2>/dev/null; rm -rf "$T"' EXIT
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY DATA_DIR DOWNLOADER
export UVAE_ATTEMPTS=2 UVAE_BACKOFF=0
DEAD=http://127.0.0.1:9
pass=0 fail=0

ok() { pass=$((pass + 1)); printf 'ok   %s\n' "$1"; }
bad() {   # bad NAME [LOG]: a failed check, with the command's output indented below it
    fail=$((fail + 1)); printf 'FAIL %s\n' "$1"
    if [ -n "${2:-}" ] && [ -f "$2" ]; then sed 's/^/     | /' "$2"; fi
}
# dv ARGS...: download_verified in a subshell (it exits on failure), output to $T/log, status in $rc
dv() {
    (set -euo pipefail; PROG=dv; source "$ROOT/data_scripts/common.sh"; download_verified "$@") >"$T/log" 2>&1
    rc=$?
}
# expect [-c CONDITION] NAME RC [PATTERN...]: the last run's status is RC, its output holds every
# PATTERN, and the shell CONDITION (if given) holds afterwards
expect() {
    local cond=true name want p
    if [ "$1" = -c ]; then cond=$2; shift 2; fi
    name=$1 want=$2
    shift 2
    if [ "$rc" -ne "$want" ]; then bad "$name (exit status $rc, want $want)" "$T/log"; return 1; fi
    for p in "$@"; do
        if ! grep -qF -- "$p" "$T/log"; then bad "$name (output lacks: $p)" "$T/log"; return 1; fi
    done
    if ! eval "$cond"; then bad "$name (after it, this does not hold: $cond)" "$T/log"; return 1; fi
    ok "$name"
}
same() { cmp -s "$1" "$2"; }

# ---- the pinned checksums look like sha256 sums ---------------------------------------------------
for s in get_mnist:4 get_cifar10:1 get_oxford_pets:2; do
    f=$ROOT/data_scripts/${s%%:*}.sh
    n=$(grep -oE '\b[0-9a-f]{64}\b' "$f" | sort -u | wc -l)
    if bash -n "$f" && [ "$n" -eq "${s##*:}" ]; then ok "${s%%:*}.sh parses and pins ${s##*:} sha256 sum(s)"
    else bad "${s%%:*}.sh: syntax, or $n distinct sha256 sums where ${s##*:} are expected"; fi
done

# ---- sha256 of a generated file -------------------------------------------------------------------
head -c 200000 /dev/urandom >"$T/src.bin"
if command -v sha256sum >/dev/null 2>&1; then SHA=$(sha256sum "$T/src.bin"); else SHA=$(shasum -a 256 "$T/src.bin"); fi
SHA=${SHA%% *}
WRONG=$(printf '%064d' 0)
got=$(PROG=t; source "$ROOT/data_scripts/common.sh" && sha256_of "$T/src.bin")
if [ "$got" = "$SHA" ]; then ok "sha256_of agrees with sha256sum"; else bad "sha256_of gave '$got', want $SHA"; fi

if command -v curl >/dev/null 2>&1; then
    SRC=file://$T/src.bin
    # ---- download, verify, keep ------------------------------------------------------------------
    dv "$SRC" "$T/a/file.bin" "$SHA"
    expect -c 'same "$T/src.bin" "$T/a/file.bin" && [ ! -e "$T/a/file.bin.part" ]' "download_verified: a file:// download with the right sha256" 0 "ok $T/a/file.bin (sha256 verified)"
    dv "$DEAD/file.bin" "$T/a/file.bin" "$SHA"
    expect "download_verified: a file already there with a good sum is kept (no download)" 0 "already there, sha256 verified"
    printf 'garbage' >"$T/a/file.bin"
    dv "$SRC" "$T/a/file.bin" "$SHA"
    expect -c 'same "$T/src.bin" "$T/a/file.bin"' "download_verified: a file already there with a bad sum is fetched again" 0 "its sha256 is wrong"

    # ---- a wrong checksum is refused ----------------------------------------------------------------
    dv "$SRC" "$T/b/file.bin" "$WRONG"
    expect -c '[ ! -e "$T/b/file.bin" ] && [ ! -e "$T/b/file.bin.part" ]' "download_verified: a wrong sha256 gives exit 1 and the message" 1 \
        "error: could not download $SRC" "but its sha256 is $SHA, not $WRONG" "What to do" "$T/b/file.bin"

    # ---- resume -------------------------------------------------------------------------------------
    mkdir -p "$T/c"
    head -c 80000 "$T/src.bin" >"$T/c/file.bin.part"
    UVAE_ATTEMPTS=1 dv "$SRC" "$T/c/file.bin" "$SHA"
    expect -c 'same "$T/src.bin" "$T/c/file.bin"' "download_verified: a partial .part is resumed" 0 "sha256 verified"
    # a .part whose first bytes are wrong: resuming appends to it (the sum then fails, proving it
    # resumed); the next attempt starts from scratch and succeeds
    { head -c 1000 /dev/zero; tail -c +1001 "$T/src.bin" | head -c 50000; } >"$T/c/bad.bin.part"
    dv "$SRC" "$T/c/bad.bin" "$SHA"
    expect -c 'same "$T/src.bin" "$T/c/bad.bin"' "download_verified: a corrupt .part fails its check, is dropped, and the retry succeeds" 0 \
        "starting it again from scratch" "(attempt 2/2" "ok $T/c/bad.bin (sha256 verified)"

    # ---- mirrors ------------------------------------------------------------------------------------
    dv "$DEAD/file.bin" "$T/d/file.bin" "$SHA" "$SRC"
    expect -c 'same "$T/src.bin" "$T/d/file.bin"' "download_verified: an unreachable URL falls back to the next mirror" 0 "sha256 verified"
else
    echo "SKIP file:// download checks: curl is not installed"
fi

# ---- over HTTP: a local python3 http.server (it cannot resume, so a .part must be started over) ----
if command -v python3 >/dev/null 2>&1; then
    mkdir -p "$T/www" && cp "$T/src.bin" "$T/www/src.bin"
    python3 -u -m http.server 0 --bind 127.0.0.1 --directory "$T/www" >"$T/http.log" 2>&1 &
    HTTP_PID=$!
    port=
    for _ in $(seq 50); do
        port=$(sed -n 's/.* port \([0-9][0-9]*\) .*/\1/p' "$T/http.log" | head -n 1)
        [ -n "$port" ] && break
        sleep 0.1
    done
    if [ -z "$port" ]; then
        echo "SKIP HTTP checks: python3 -m http.server did not start"
    else
        for tool in curl wget; do
            command -v $tool >/dev/null 2>&1 || { echo "SKIP HTTP check with $tool: not installed"; continue; }
            mkdir -p "$T/h_$tool" && head -c 1000 "$T/src.bin" >"$T/h_$tool/file.bin.part"
            DOWNLOADER=$tool dv "http://127.0.0.1:$port/src.bin" "$T/h_$tool/file.bin" "$SHA"
            expect -c "same \"\$T/src.bin\" \"\$T/h_$tool/file.bin\"" \
                "download_verified ($tool) over HTTP, with a .part the server cannot resume" 0 "sha256 verified"
        done
        dv "http://127.0.0.1:$port/missing.bin" "$T/h_404/missing.bin" "$SHA"
        expect "download_verified: HTTP 404 gives exit 1 and the message" 1 \
            "error: could not download http://127.0.0.1:$port/missing.bin" "What to do"
    fi
    kill "$HTTP_PID" 2>/dev/null
    wait "$HTTP_PID" 2>/dev/null
    HTTP_PID=
else
    echo "SKIP HTTP checks: python3 is not installed (it serves the files)"
fi

# ---- unreachable: exit 1, one clear message, fast -----------------------------------------------------
for tool in curl wget; do
    command -v $tool >/dev/null 2>&1 || { echo "SKIP unreachable-URL check with $tool: not installed"; continue; }
    # shellcheck disable=SC2034  # start is read by the expect -c condition
    start=$SECONDS
    UVAE_BACKOFF=1 DOWNLOADER=$tool dv "$DEAD/nothing.tar.gz" "$T/e/nothing.tar.gz" "$SHA"
    expect -c '[ $((SECONDS - start)) -le 10 ] && [ ! -e "$T/e/nothing.tar.gz.part" ]' "download_verified ($tool): an unreachable URL gives exit 1 and the message" 1 \
        "error: could not download $DEAD/nothing.tar.gz" "$tool could not fetch it" "What to do" \
        "$T/e/nothing.tar.gz" "its sha256 is $SHA" "retrying in 1s"
done
dv "$DEAD/x" "$T/f/x" "abc"
expect "download_verified: a malformed sha256 argument is refused" 1 "is not a sha256"

# ---- the three scripts, offline --------------------------------------------------------------------
if ! command -v curl >/dev/null 2>&1 && ! command -v wget >/dev/null 2>&1; then
    echo "SKIP the scripts' offline checks: neither curl nor wget is installed"
else
MNIST_MIRRORS="$DEAD/mnist" DATA_DIR=$T/data bash "$ROOT/data_scripts/get_mnist.sh" >"$T/log" 2>&1; rc=$?
expect "get_mnist.sh offline: exit 1 naming the URL and the file" 1 \
    "get_mnist.sh: error: could not download $DEAD/mnist/train-images-idx3-ubyte.gz" "$T/data/mnist/train-images-idx3-ubyte.gz"
for s in get_cifar10:https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz \
         get_oxford_pets:https://www.robots.ox.ac.uk/~vgg/data/pets/data/annotations.tar.gz; do
    # an unreachable proxy stands in for "offline" without touching the network
    https_proxy=$DEAD http_proxy=$DEAD DATA_DIR=$T/data bash "$ROOT/data_scripts/${s%%:*}.sh" >"$T/log" 2>&1; rc=$?
    expect "${s%%:*}.sh offline: exit 1 naming the URL" 1 "${s%%:*}.sh: error: could not download ${s#*:}" "What to do"
done
fi

# ---- extract_tar ---------------------------------------------------------------------------------------
mkdir -p "$T/tar/pkg/sub" && echo hello >"$T/tar/pkg/sub/a.txt" && tar -czf "$T/tar/pkg.tar.gz" -C "$T/tar" pkg
TSHA=$(PROG=t; source "$ROOT/data_scripts/common.sh" && sha256_of "$T/tar/pkg.tar.gz")
ex() { (set -euo pipefail; PROG=extract; source "$ROOT/data_scripts/common.sh"; extract_tar "$@") >"$T/log" 2>&1; rc=$?; }
ex "$T/tar/pkg.tar.gz" "$T/out" "$TSHA" pkg/sub/a.txt
expect -c 'grep -qx hello "$T/out/pkg/sub/a.txt"' "extract_tar: unpacks and checks the expected files" 0 "unpacking"
ex "$T/tar/pkg.tar.gz" "$T/out" "$TSHA" pkg/sub/a.txt
expect "extract_tar: a second run skips the work" 0 "already unpacked"
rm "$T/out/pkg/sub/a.txt"
ex "$T/tar/pkg.tar.gz" "$T/out" "$TSHA" pkg/sub/a.txt
expect "extract_tar: a missing file makes it unpack again" 0 "unpacking"
ex "$T/tar/pkg.tar.gz" "$T/out2" "$TSHA" pkg/sub/nope.txt
expect "extract_tar: an archive without an expected file is an error" 1 "did not contain pkg/sub/nope.txt"

# ---- make install / uninstall, and a program built against the installed header ---------------------
P=$T/prefix
if ${MAKE:-make} -s -C "$ROOT" install PREFIX="$P" >"$T/log" 2>&1 && [ -f "$P/include/unetvae.h" ] &&
   [ -f "$P/include/unetvae_cuda.cu" ] && [ -f "$P/share/doc/unetvae/README.md" ]; then
    ok "make install PREFIX=...: header, CUDA companion and docs in place"
    mkdir -p "$T/prog" && cat >"$T/prog/main.c" <<'EOF'
#define UNETVAE_IMPLEMENTATION
#include <unetvae.h>
#include <stdio.h>
int main(void) {
    uvae_unet_config cfg = {3, 2, 4, 2, UVAE_DOWN_MAXPOOL, UVAE_UP_TRANSPOSE};
    uvae_unet net;
    uvae_ctx *ctx = uvae_ctx_new(0);
    uvae_tensor *x = uvae_tensor_new(4, (int[]){1, 3, 16, 16}), *y;
    if (!ctx || !x || uvae_unet_init(&net, &cfg, 1) != UVAE_OK) { puts(uvae_last_error()); return 1; }
    uvae_ctx_reset(ctx, 0);
    if (!(y = uvae_unet_forward(ctx, &net, x))) { puts(uvae_last_error()); return 1; }
    printf("installed header works: logits [%d,%d,%d,%d]\n", y->shape[0], y->shape[1], y->shape[2], y->shape[3]);
    uvae_unet_free(&net); uvae_tensor_free(x); uvae_ctx_free(ctx);
    return 0;
}
EOF
    if (cd "$T/prog" && ${CC:-cc} -std=c99 -I"$P/include" main.c -lm -o main && ./main) >"$T/log" 2>&1 &&
       grep -qF "logits [1,2,16,16]" "$T/log"; then
        ok "a program built with -I\$PREFIX/include runs: $(tail -n 1 "$T/log")"
    else bad "building or running a program against the installed header" "$T/log"; fi
    if ${MAKE:-make} -s -C "$ROOT" uninstall PREFIX="$P" >"$T/log" 2>&1 && [ ! -e "$P/include/unetvae.h" ] &&
       [ ! -e "$P/include/unetvae_cuda.cu" ] && [ ! -e "$P/share/doc/unetvae" ]; then
        ok "make uninstall PREFIX=...: everything removed"
    else bad "make uninstall" "$T/log"; fi
else
    bad "make install PREFIX=$P" "$T/log"
fi

# ---- bench/experiments_unet.sh REPORT=1: results.md from the runs' summary lines, with and without
#      the test-time flip's "(flip TTA)" in them ----
mkdir -p "$T/exp"
sum='summary: unet %s loss %s width 32 depth 4 size 128 | %s params | 100 epochs | %s s (train 1.0 s) | %s img/s | val%s pet IoU %s mIoU %s pixel acc %s | x\n'
printf "$sum" maxpool/transpose ce 111 10.5 1.5 "" 0.8011 0.7022 0.8833 > "$T/exp/maxpool-transpose-ce.log"
printf "$sum" maxpool/transpose dice 222 20.5 2.5 " (flip TTA)" 0.8111 0.7122 0.8933 > "$T/exp/maxpool-transpose-dice.log"
printf "$sum" strided/transpose ce 333 30.5 3.5 "" 0.8211 0.7222 0.9033 > "$T/exp/strided-transpose-ce.log"
printf "$sum" strided/upsample dice 444 40.5 4.5 " (flip TTA)" 0.8311 0.7322 0.9133 > "$T/exp/strided-upsample-dice.log"
if REPORT=1 DICE_LOSS=dice EVAL= OUT="$T/exp" bash "$ROOT/bench/experiments_unet.sh" >"$T/log" 2>&1 &&
   grep -qxF '| maxpool-transpose-ce | 111 | 100 | 10.5 s | 1.5 | 0.8011 | 0.7022 | 0.8833 | | |' "$T/exp/results.md" &&
   grep -qxF '| maxpool-transpose-dice | 222 | 100 | 20.5 s | 2.5 | 0.8111 | 0.7122 | 0.8933 | | |' "$T/exp/results.md" &&
   grep -qxF '| strided-upsample-dice | 444 | 100 | 40.5 s | 4.5 | 0.8311 | 0.7322 | 0.9133 | | |' "$T/exp/results.md"; then
    ok "experiments_unet.sh REPORT=1: results.md rows from the summary lines (with and without flip TTA)"
else cp "$T/exp/results.md" "$T/log" 2>/dev/null; bad "experiments_unet.sh REPORT=1 table" "$T/log"; fi
# ... and with EVAL, a column from each run's second evaluation (OUT/NAME.eval.log)
for v in maxpool-transpose-ce maxpool-transpose-dice strided-transpose-ce strided-upsample-dice; do
    printf 'eval (flip TTA, inputs 160x160): x/split_val.txt (60 images): pet IoU 0.9%s  mIoU 0.8%s  pixel acc 0.9000  Dice 0.9000  (IoU pet 0.1 background 0.2 border 0.3)\n' \
        "${#v}1" "${#v}2" > "$T/exp/$v.eval.log"
done
if REPORT=1 DICE_LOSS=dice EVAL="--tta 1 --eval-size 160" OUT="$T/exp" bash "$ROOT/bench/experiments_unet.sh" >"$T/log" 2>&1 &&
   grep -qF '| pet IoU / mIoU, eval `--tta 1 --eval-size 160` |' "$T/exp/results.md" &&
   grep -qxF '| maxpool-transpose-ce | 111 | 100 | 10.5 s | 1.5 | 0.8011 | 0.7022 | 0.8833 | 0.9201 / 0.8202 | | |' "$T/exp/results.md" &&
   grep -qxF '| strided-upsample-dice | 444 | 100 | 40.5 s | 4.5 | 0.8311 | 0.7322 | 0.9133 | 0.9211 / 0.8212 | | |' "$T/exp/results.md"; then
    ok "experiments_unet.sh REPORT=1 EVAL=...: the second evaluation's column"
else cp "$T/exp/results.md" "$T/log" 2>/dev/null; bad "experiments_unet.sh REPORT=1 EVAL table" "$T/log"; fi
# ... and with the defaults (the one recipe: CE + Dice for the "Dice" variants, the 128+160 protocol),
# the twin's cells where a variant has a .torch.log and empty ones where it has none
mkdir -p "$T/exp2"
for v in maxpool-transpose-ce maxpool-transpose-ce+dice strided-transpose-ce strided-upsample-ce+dice; do
    printf "$sum" a/b x 555 50.5 5.5 " (flip TTA)" 0.8011 0.7022 0.8833 > "$T/exp2/$v.log"
    printf 'eval (flip TTA, inputs 128x128 + 160x160): x (60 images): pet IoU 0.8111  mIoU 0.7122  pixel acc 0.9  Dice 0.9\n' > "$T/exp2/$v.eval.log"
done
printf 'summary: torch unet strided/upsample loss ce+dice width 32 depth 4 size 128 | 9417347 params | 100 epochs | train 100.0 s | 2.5 img/s | val pet IoU 0.8222 mIoU 0.7333 pixel acc 0.9\n' \
    > "$T/exp2/strided-upsample-ce+dice.torch.log"
if REPORT=1 TWIN=1 OUT="$T/exp2" bash "$ROOT/bench/experiments_unet.sh" >"$T/log" 2>&1 &&
   grep -qF '| pet IoU / mIoU, eval `--tta 1 --eval-size 128,160` |' "$T/exp2/results.md" &&
   grep -qxF '| strided-upsample-ce+dice | 555 | 100 | 50.5 s | 5.5 | 0.8011 | 0.7022 | 0.8833 | 0.8111 / 0.7122 | 0.8222 / 0.7333 | 2.5 |' "$T/exp2/results.md" &&
   grep -qxF '| maxpool-transpose-ce+dice | 555 | 100 | 50.5 s | 5.5 | 0.8011 | 0.7022 | 0.8833 | 0.8111 / 0.7122 | | |' "$T/exp2/results.md"; then
    ok "experiments_unet.sh REPORT=1 with the defaults: CE + Dice variants, the protocol's column, the twin's cells where it ran"
else cp "$T/exp2/results.md" "$T/log" 2>/dev/null; bad "experiments_unet.sh REPORT=1 defaults table" "$T/log"; fi
# ... and a real run (stand-ins for unet_pets and python): the twin gets --ckpt OUT/NAME.torch.pt,
# and run again where that file exists it goes on, its log appended to
mkdir -p "$T/exp3" "$T/pets/images"
printf '#!/bin/sh\necho "$@" >> "%s/bin_args"\nprintf "%s" a/b x 1 1 1 "" 0.8 0.7 0.9\n' "$T" "$sum" > "$T/fakebin"
printf '#!/bin/sh\necho "$@" >> "%s/twin_args"\necho "epoch 1/1"\necho "summary: torch unet a/b loss x | 1 params | 1 epochs | train 1.0 s | 1.0 img/s | val pet IoU 0.8 mIoU 0.7 pixel acc 0.9"\n' "$T" > "$T/fakepy"
chmod +x "$T/fakebin" "$T/fakepy"
run3() { TWIN=1 EVAL= BIN="$T/fakebin" PY="$T/fakepy" DATA="$T/pets" OUT="$T/exp3" bash "$ROOT/bench/experiments_unet.sh" >"$T/log" 2>&1; }
if run3 && grep -qF -- "--ckpt $T/exp3/strided-transpose-ce.torch.pt" "$T/twin_args" && : > "$T/exp3/strided-transpose-ce.torch.pt" && run3 &&
   [ "$(grep -c '^epoch' "$T/exp3/strided-transpose-ce.torch.log")" = 2 ] && [ "$(grep -c '^epoch' "$T/exp3/maxpool-transpose-ce.torch.log")" = 1 ] &&
   grep -qxF '| strided-transpose-ce | 1 | 100 | 1 s | 1 | 0.8 | 0.7 | 0.9 | 0.8 / 0.7 | 1.0 |' "$T/exp3/results.md"; then
    ok "experiments_unet.sh TWIN=1: the twin keeps a checkpoint per variant and goes on from it, appending to its log"
else cat "$T/twin_args" >> "$T/log" 2>/dev/null; bad "experiments_unet.sh TWIN=1 --ckpt" "$T/log"; fi
# ... where strided + upsample, and only it, trains (and its twin too) with STUP_ARGS after the recipe
stup() { grep -F -- "$1" "$2" | grep -cF -- "$3"; }
if [ "$(grep -c '' "$T/bin_args")" = 8 ] && [ "$(grep -cF -- '--epochs 150' "$T/bin_args")" = 2 ] &&
   [ "$(stup '--up upsample' "$T/bin_args" '--jitter 0.2 --tta 1 --epochs 150 --device cpu')" = 2 ] &&
   [ "$(grep -c '' "$T/twin_args")" = 8 ] && [ "$(grep -cF -- '--epochs 150' "$T/twin_args")" = 2 ] &&
   [ "$(stup '--up upsample' "$T/twin_args" '--epochs 150')" = 2 ] &&
   grep -qF 'Recipe: `--size 128 --width 32 --depth 4 --epochs 100 --batch 16 --lr 2e-3 --min-scale 0.4 --jitter 0.2 --tta 1` (strided-upsample: + `--epochs 150`)' "$T/exp3/results.md"; then
    ok "experiments_unet.sh: strided + upsample alone gets STUP_ARGS (--epochs 150) after the recipe, its twin too"
else cat "$T/bin_args" "$T/twin_args" >> "$T/log" 2>/dev/null; bad "experiments_unet.sh STUP_ARGS" "$T/log"; fi
DICE_LOSS=bce REPORT=1 OUT="$T/exp2" bash "$ROOT/bench/experiments_unet.sh" >"$T/log" 2>&1; rc=$?
expect -c '[ "$(wc -l < "$T/log")" = 1 ]' "experiments_unet.sh DICE_LOSS=bce: one line, exit 1" 1 "DICE_LOSS must be dice or ce+dice, not 'bce'"

# bench/fold_split.py: a second split, its validation images drawn per breed from the first split's
# training images (disjoint from its validation images), the rest (first split's validation
# included) for training; deterministic; too few images of a breed, or no split folder, is one line
mkdir -p "$T/split1"
for b in Abyssinian Bengal american_bulldog; do
    for i in $(seq 1 12); do echo "${b}_$i"; done >>"$T/split1/split_train.txt"
    for i in 13 14 15; do echo "${b}_$i"; done >>"$T/split1/split_val.txt"
done
python3 "$ROOT/bench/fold_split.py" --split "$T/split1" --out "$T/fold2" --per-breed 4 >"$T/log" 2>&1; rc=$?
python3 "$ROOT/bench/fold_split.py" --split "$T/split1" --out "$T/fold2b" --per-breed 4 >/dev/null 2>&1
fold_ok() {   # 12 val (4 per breed, all from split_train), 33 train, together the 45 names once each
    [ "$(wc -l < "$T/fold2/val.txt")" = 12 ] && [ "$(wc -l < "$T/fold2/train.txt")" = 33 ] &&
    [ "$(cut -d_ -f1 "$T/fold2/val.txt" | sort | uniq -c | awk '$1 == 4' | wc -l)" = 3 ] &&
    [ -z "$(sort "$T/fold2/val.txt" "$T/split1/split_val.txt" | uniq -d)" ] &&
    [ "$(sort "$T/fold2/val.txt" "$T/fold2/train.txt" | uniq -u | wc -l)" = 45 ] &&
    [ "$(sort "$T/fold2/val.txt" "$T/fold2/train.txt" "$T/split1/split_train.txt" "$T/split1/split_val.txt" | uniq -c | awk '$1 != 2' | wc -l)" = 0 ] &&
    same "$T/fold2/val.txt" "$T/fold2b/val.txt"
}
expect -c fold_ok "fold_split.py: 4 per breed from split 1's training images, the rest for training, the same draw twice" 0 \
    "fold_split.py: 33 train / 12 val (3 breeds x 4)"
python3 "$ROOT/bench/fold_split.py" --split "$T/split1" --out "$T/fold3" --per-breed 12 >"$T/log" 2>&1; rc=$?
expect -c '[ ! -e "$T/fold3" ] && [ "$(wc -l < "$T/log")" = 1 ]' "fold_split.py: too few images of a breed" 1 \
    "fold_split.py: breed Abyssinian has 12 training images, needs more than --per-breed 12"
python3 "$ROOT/bench/fold_split.py" --split "$T/nowhere" --out "$T/fold3" >"$T/log" 2>&1; rc=$?
expect -c '[ "$(wc -l < "$T/log")" = 1 ]' "fold_split.py: no split folder" 1 "fold_split.py: " "$T/nowhere/split_train.txt"

# bench --torch FILE: each of our rows is followed by its ratio to FILE's row of the same name and
# batch (bench/torch_bench.py's format); a file without such rows is an error
B="$ROOT/${BUILD:-build}/bench"
if [ ! -x "$B" ]; then bad "bench --torch: $B is not built (make test-scripts builds it)"
else
    printf '%s\n' 'cvae mnist             batch 128  28x28  train     100.0 img/s ( 1280.0 ms/step,    5.6 GFLOP/s)  inference      50.0 img/s (   6.1 GFLOP/s)  peak    201 MB   [torch 9.9 cpu 1 threads]' \
        'cvae mnist             batch  64  28x28  train       1.0 img/s (64000.0 ms/step,    5.6 GFLOP/s)  inference       1.0 img/s (   6.1 GFLOP/s)  peak    201 MB   [other batch]' >"$T/torch.txt"
    OMP_NUM_THREADS=1 "$B" --steps 1 --only "cvae mnist" --torch "$T/torch.txt" >"$T/log" 2>&1
    rc=$?
    # the ratio line against our row's img/s over the file's (100 and 50), to the 0.01 of its rounding
    ratio=$(awk 'function after(w,  i) { for (i = 1; i < NF; i++) if ($i == w) return $(i + 1) + 0 }
                 NR == 1 { t = after("train") / 100; f = after("inference") / 50 }
                 / vs / { rt = after("train"); rf = after("inference") }
                 END { d = rt - t; e = rf - f; print (t > 0 && d * d < 1e-4 && e * e < 1e-4) ? "right" : "wrong" }' "$T/log")
    expect -c '[ "$(grep -c " vs " "$T/log")" = 1 ] && [ "$ratio" = right ]' "bench --torch: one ratio line, ours / PyTorch img/s" 0 \
        "cvae mnist             batch 128  vs torch 9.9 cpu 1 threads"
    echo 'no rows here' >"$T/torch.txt"
    "$B" --only "cvae mnist" --torch "$T/torch.txt" >"$T/log" 2>&1
    rc=$?
    expect "bench --torch: a file without rows" 1 "bench: --torch $T/torch.txt: no rows of bench/torch_bench.py in it"
    # bench/vs_torch.sh: rounds of PyTorch's row then ours, and a summary of the bests; a stand-in
    # for torch_bench.py prints a row at 1280 ms/step (100 img/s), and our best of two rounds over it
    # must be the summary's ratio
    printf '#!/bin/sh\necho "cvae mnist             batch 128  28x28  train     100.0 img/s ( 1280.0 ms/step,    5.6 GFLOP/s)  inference      50.0 img/s (   6.1 GFLOP/s)  peak    201 MB   [torch 9.9 cpu 1 threads]"\n' >"$T/fakepy"
    chmod +x "$T/fakepy"
    ROUNDS=2 ONLY="cvae mnist" THREADS=1 STEPS=1 BENCH="$B" PY="$T/fakepy" OUT="$T/vs" bash "$ROOT/bench/vs_torch.sh" >"$T/log" 2>&1
    rc=$?
    ratio=$(awk '/ batch .* train / && !/ vs / { ms = 0; for (i = 1; i < NF; i++) if ($i == "(" && !ms) ms = $(i + 1); v = 128000 / ms; if (v > b) b = v }
                 /^cvae mnist  *PyTorch/ { s = $(NF - 3) + 0 }
                 END { d = s - b / 100; print (b > 0 && d * d < 1e-4) ? "right" : "wrong" }' "$T/log")
    expect -c '[ "$(grep -c "^== round" "$T/log")" = 2 ] && [ "$(grep -c " vs torch 9.9" "$T/log")" = 2 ] && [ "$ratio" = right ] && [ -f "$T/vs/torch_r2_0.txt" ]' \
        "bench/vs_torch.sh: two rounds, a ratio per round, the bests' ratio" 0 "== best of 2 round(s)" "cvae mnist         PyTorch    100.00"
    ROUNDS=1 ONLY="no such row" BENCH="$B" PY="$T/fakepy" OUT="$T/vs" bash "$ROOT/bench/vs_torch.sh" >"$T/log" 2>&1
    rc=$?
    expect "bench/vs_torch.sh: ONLY that names no row" 1 'vs_torch: no row'"'"'s name holds "no such row"'
    ROUNDS=x BENCH="$B" PY="$T/fakepy" OUT="$T/vs" bash "$ROOT/bench/vs_torch.sh" >"$T/log" 2>&1
    rc=$?
    expect "bench/vs_torch.sh: a bad ROUNDS" 1 "vs_torch: ROUNDS=x: want a whole number >= 1"
    STEPS=2x BENCH="$B" PY="$T/fakepy" OUT="$T/vs" bash "$ROOT/bench/vs_torch.sh" >"$T/log" 2>&1
    rc=$?
    expect "bench/vs_torch.sh: a bad STEPS" 1 "vs_torch: STEPS=2x: want a whole number >= 1"
fi

echo "test_scripts: $pass passed, $fail failed"
[ "$fail" -eq 0 ]

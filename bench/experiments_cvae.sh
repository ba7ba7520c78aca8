#!/usr/bin/env bash
# bench/experiments_cvae.sh — the conditional VAE experiment on MNIST and CIFAR-10 with the recipes
# the README reports; writes OUT/results.md. `make experiments-cvae` runs it. Each dataset runs in
# two steps, as the README's runs did: the judge and the teacher (`--epochs 0`), then the CVAE with
# them loaded (the CVAE's random streams do not depend on which way the classifiers came).
# Settings from the environment:
#   BIN          the cvae binary                 (build/cvae; build/cvae_cuda for the GPU)
#   MNIST, CIFAR the dataset folders             (data/mnist, data/cifar10)
#   OUT          the output folder               (runs/experiments-cvae)
#   MNIST_CLS, MNIST_ARGS, CIFAR_CLS, CIFAR_ARGS  the classifiers' and the CVAE's recipes (below)
#   ONLY         mnist or cifar10 to run one     (both)
#   REPORT       1: run nothing, only rebuild results.md from the logs already in OUT
set -euo pipefail
BIN=${BIN:-build/cvae}
MNIST=${MNIST:-data/mnist}
CIFAR=${CIFAR:-data/cifar10}
OUT=${OUT:-runs/experiments-cvae}
MNIST_CLS=${MNIST_CLS:---judge-epochs 3 --judge-width 32 --teacher-width 32}
MNIST_ARGS=${MNIST_ARGS:---epochs 8 --label-loss 1 --cond-planes 4}
CIFAR_CLS=${CIFAR_CLS:---judge-epochs 30 --judge-width 32 --teacher-width 16}
CIFAR_ARGS=${CIFAR_ARGS:---epochs 20 --batch 64 --lr 2e-3 --label-loss 150 --label-aug 1 --cond-planes 4}
ONLY=${ONLY:-}
REPORT=${REPORT:-0}

[ "$REPORT" = 1 ] || [ -x "$BIN" ] || { echo "experiments_cvae: $BIN is not built (make $BIN)" >&2; exit 1; }
mkdir -p "$OUT"
rows=()
for ds in mnist cifar10; do
    [ -n "$ONLY" ] && [ "$ONLY" != "$ds" ] && continue
    if [ "$ds" = mnist ]; then data=$MNIST; cls=$MNIST_CLS; args=$MNIST_ARGS; else data=$CIFAR; cls=$CIFAR_CLS; args=$CIFAR_ARGS; fi
    if [ "$REPORT" != 1 ]; then
        echo "== $ds: the judge and the teacher"
        # shellcheck disable=SC2086
        "$BIN" --dataset "$ds" --data "$data" --epochs 0 --label-loss 1 $cls --out "$OUT/$ds-classifiers" | tee "$OUT/$ds-classifiers.log"
        echo "== $ds: the CVAE"
        # shellcheck disable=SC2086
        "$BIN" --dataset "$ds" --data "$data" --judge "$OUT/$ds-classifiers/judge.safetensors" \
            --teacher "$OUT/$ds-classifiers/teacher.safetensors" $args --out "$OUT/$ds" | tee "$OUT/$ds.log"
    fi
    line=$(grep '^test loss' "$OUT/$ds.log" | tail -1)
    tline=$(grep '^(by the teacher' "$OUT/$ds.log" | tail -1)
    secs=$(grep '^test loss' "$OUT/$ds.log" | tail -1 | awk -F'|' '{ n = split($NF, a, " "); print a[1] }')
    # test loss X nats/image[ = B bits/dim] (...) | judge test accuracy J % | label-follow F % (still the original class O %) ... | T s
    rows+=("$(echo "$line" | awk -F'|' -v ds="$ds" -v args="$args" -v tline="$tline" -v secs="$secs" '{
        split($1, a, " "); loss = a[3]; bpd = ($1 ~ /bits\/dim/) ? a[6] : "-";
        split($2, j, " "); split($3, f, " ");
        orig = $3; sub(/.*class /, "", orig); sub(/ %.*/, "", orig);
        t = tline; sub(/.*label-follow /, "", t); sub(/ %.*/, "", t);
        printf "| %s | `%s` | %s | %s | %s %% | **%s %%** | %s %% | %s %% | %.0f min |", ds, args, loss, bpd, j[4], f[2], orig, t, secs / 60 }')")
done
{
    echo "# Conditional VAE: label-follow on MNIST and CIFAR-10"
    echo
    echo "Made by bench/experiments_cvae.sh on $(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -m), $(nproc) CPU threads."
    echo "Test loss: reconstruction NLL + KL with the correct labels, nats per image (bits/dim for the discretised"
    echo "logistic). Label-follow: every test image given a random wrong label; the share of outputs the judge (trained"
    echo "separately, never used in training) classifies as the given label; \"original\": the share it still classifies"
    echo "as the true class; \"teacher\": label-follow as the label loss's own classifier sees it. Classifier recipes:"
    echo "MNIST \`$MNIST_CLS\`, CIFAR-10 \`$CIFAR_CLS\`. Time: the CVAE step (training and the per-epoch evaluation)."
    echo
    echo "| dataset | CVAE recipe | test loss (nats) | bits/dim | judge test acc. | label-follow | original | teacher | time |"
    echo "|---|---|---|---|---|---|---|---|---|"
    printf '%s\n' "${rows[@]}"
    echo
    echo "Pictures: \`$OUT/<dataset>/mismatched.png\`, \`recon.png\`, \`samples.png\`, \`curves.png\`."
} > "$OUT/results.md"
echo "wrote $OUT/results.md"
cat "$OUT/results.md"

#!/usr/bin/env bash
# bench/experiments_cvae.sh — the conditional VAE experiment on MNIST and CIFAR-10 with the recipes
# the README reports; writes OUT/results.md. `make experiments-cvae` runs it. Settings from the
# environment:
#   BIN          the cvae binary                 (build/cvae; build/cvae_cuda for the GPU)
#   MNIST, CIFAR the dataset folders             (data/mnist, data/cifar10)
#   OUT          the output folder               (runs/experiments-cvae)
#   MNIST_ARGS, CIFAR_ARGS   the recipes         (below)
#   ONLY         mnist or cifar10 to run one     (both)
set -euo pipefail
BIN=${BIN:-build/cvae}
MNIST=${MNIST:-data/mnist}
CIFAR=${CIFAR:-data/cifar10}
OUT=${OUT:-runs/experiments-cvae}
MNIST_ARGS=${MNIST_ARGS:---epochs 8 --label-loss 1 --cond-planes 4}
CIFAR_ARGS=${CIFAR_ARGS:---epochs 30 --label-loss 1 --cond-planes 4 --judge-epochs 30 --judge-width 48 --teacher-width 32}
ONLY=${ONLY:-}

[ -x "$BIN" ] || { echo "experiments_cvae: $BIN is not built (make $BIN)" >&2; exit 1; }
mkdir -p "$OUT"
rows=()
for ds in mnist cifar10; do
    [ -n "$ONLY" ] && [ "$ONLY" != "$ds" ] && continue
    if [ "$ds" = mnist ]; then data=$MNIST; args=$MNIST_ARGS; else data=$CIFAR; args=$CIFAR_ARGS; fi
    echo "== $ds: $BIN --dataset $ds --data $data $args --out $OUT/$ds"
    start=$(date +%s)
    # shellcheck disable=SC2086
    "$BIN" --dataset "$ds" --data "$data" $args --out "$OUT/$ds" | tee "$OUT/$ds.log"
    secs=$(( $(date +%s) - start ))
    line=$(grep '^test loss' "$OUT/$ds.log" | tail -1)
    # test loss X nats/image[ = B bits/dim] (...) | judge test accuracy J % | label-follow F % (still the original class O %) ...
    rows+=("$(echo "$line" | awk -F'|' -v ds="$ds" -v secs="$secs" -v args="$args" '{
        n = split($1, a, " "); loss = a[3]; bpd = ($1 ~ /bits\/dim/) ? a[6] : "-";
        split($2, j, " "); split($3, f, " ");
        orig = $3; sub(/.*class /, "", orig); sub(/ %.*/, "", orig);
        printf "| %s | `%s` | %s | %s | %s %% | **%s %%** | %s %% | %d min |", ds, args, loss, bpd, j[4], f[2], orig, (secs + 30) / 60 }')")
done
{
    echo "# Conditional VAE: label-follow on MNIST and CIFAR-10"
    echo
    echo "Made by bench/experiments_cvae.sh on $(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -m), $(nproc) CPU threads, binary \`$BIN\`."
    echo "Test loss: reconstruction NLL + KL with the correct labels, nats per image (bits/dim for the discretised"
    echo "logistic). Label-follow: every test image given a random wrong label; the share of outputs the judge (trained"
    echo "separately, never used in training) classifies as the given label; \"original\": the share still classified"
    echo "as the true class."
    echo
    echo "| dataset | recipe | test loss (nats) | bits/dim | judge test acc. | label-follow | original | wall time |"
    echo "|---|---|---|---|---|---|---|---|"
    printf '%s\n' "${rows[@]}"
    echo
    echo "Pictures: \`$OUT/<dataset>/mismatched.png\`, \`recon.png\`, \`samples.png\`, \`curves.png\`."
} > "$OUT/results.md"
echo "wrote $OUT/results.md"
cat "$OUT/results.md"

#!/usr/bin/env bash
# bench/experiments_unet.sh — the four seed variants of the UNet experiment with one recipe (strided +
# upsample with STUP_ARGS added), and (TWIN=1) the PyTorch twin of each on the same split; writes
# OUT/results.md. `make experiments-unet` runs it. Settings come from the environment:
#   BIN       the unet_pets binary        (build/unet_pets; build/unet_pets_cuda for the GPU)
#   DATA      the Oxford-IIIT Pet folder  (data/oxford-pets)
#   OUT       the output folder           (runs/experiments-unet)
#   RECIPE    flags given to every run    (the README's one recipe: 128x128, width 32, 100 epochs,
#             batch 16, one-cycle to lr 2e-3, scale-crop 0.4..1, colour jitter 0.2, flip TTA)
#   DICE_LOSS the loss of the two "Dice" variants (ce+dice: the seed write-up's Dice loss; or dice)
#   STUP_ARGS flags added after RECIPE for strided + upsample only (--epochs 150: at 100 epochs it
#             misses the bar on the second held-out split, at 150 it meets it; STUP_ARGS= for none)
#   EVAL      flags of a second evaluation of each run's checkpoint on its validation split
#             (--tta 1 --eval-size 128,160: the README's protocol; EVAL= for none): `unet_pets eval`
#             writes OUT/NAME.eval.log after the run, and results.md gets its pet IoU / mIoU as a
#             column (REPORT=1 reads the .eval.log files). The twin gets the same flags.
#   TWIN      1: also run bench/torch_unet.py on each variant (PyTorch on the CPU), OUT/NAME.torch.log;
#             it saves its state in OUT/NAME.torch.pt after each epoch, and run again continues there
#   DEVICE    cpu | cuda                  (cpu)
#   REPORT    1: run nothing, only rebuild results.md from the logs already in OUT (a variant
#             without a .torch.log gets empty twin cells)
set -euo pipefail
BIN=${BIN:-build/unet_pets}
DATA=${DATA:-data/oxford-pets}
OUT=${OUT:-runs/experiments-unet}
RECIPE=${RECIPE:---size 128 --width 32 --depth 4 --epochs 100 --batch 16 --lr 2e-3 --min-scale 0.4 --jitter 0.2 --tta 1}
DICE_LOSS=${DICE_LOSS:-ce+dice}
STUP_ARGS=${STUP_ARGS---epochs 150}
EVAL=${EVAL---tta 1 --eval-size 128,160}
TWIN=${TWIN:-0}
DEVICE=${DEVICE:-cpu}
PY=${PY:-/usr/bin/python3}
REPORT=${REPORT:-0}

[ "$REPORT" = 1 ] || [ -x "$BIN" ] || { echo "experiments_unet: $BIN is not built (make $BIN)" >&2; exit 1; }
[ "$REPORT" = 1 ] || [ -d "$DATA/images" ] || { echo "experiments_unet: no Oxford-IIIT Pet images in '$DATA' (set DATA=..., or make data)" >&2; exit 1; }
mkdir -p "$OUT"
case "$DICE_LOSS" in dice|ce+dice) ;; *) echo "experiments_unet: DICE_LOSS must be dice or ce+dice, not '$DICE_LOSS'" >&2; exit 1;; esac
variants=("maxpool transpose ce" "maxpool transpose $DICE_LOSS" "strided transpose ce" "strided upsample $DICE_LOSS")
rows=()
for v in "${variants[@]}"; do
    set -- $v
    name="$1-$2-$3"
    extra=""; [ "$1-$2" = strided-upsample ] && extra=$STUP_ARGS
    if [ "$REPORT" != 1 ]; then
        echo "== $name: $BIN train --data $DATA --down $1 --up $2 --loss $3 $RECIPE${extra:+ $extra} --device $DEVICE --out $OUT/$name"
        # shellcheck disable=SC2086
        "$BIN" train --data "$DATA" --down "$1" --up "$2" --loss "$3" $RECIPE $extra --device "$DEVICE" --out "$OUT/$name" | tee "$OUT/$name.log"
    fi
    c=$(grep '^summary:' "$OUT/$name.log" | tail -1)
    ev=""
    if [ -n "$EVAL" ]; then
        if [ "$REPORT" != 1 ]; then
            # shellcheck disable=SC2086
            "$BIN" eval --ckpt "$OUT/$name/checkpoint.safetensors" --data "$DATA" --list "$OUT/$name/split_val.txt" $EVAL \
                --device "$DEVICE" | tee "$OUT/$name.eval.log"
        fi
        # eval (...): LIST (N images): pet IoU a  mIoU b  pixel acc c ...
        ev=$(grep '^eval' "$OUT/$name.eval.log" | tail -1 | sed 's/.*pet IoU \([0-9.]*\)  mIoU \([0-9.]*\).*/ \1 \/ \2 |/')
    fi
    twin="| | |"
    if [ "$TWIN" = 1 ] && [ "$REPORT" != 1 ]; then
        echo "== $name: PyTorch twin"
        append=""; [ -f "$OUT/$name.torch.pt" ] && append=-a     # a stopped twin goes on; its log too
        # shellcheck disable=SC2086
        "$PY" bench/torch_unet.py --data "$DATA" --split "$OUT/$name" --down "$1" --up "$2" --loss "$3" $RECIPE $extra $EVAL \
            --ckpt "$OUT/$name.torch.pt" | tee $append "$OUT/$name.torch.log"
    fi
    if [ -f "$OUT/$name.torch.log" ] && grep -q '^summary:' "$OUT/$name.torch.log"; then
        t=$(grep '^summary:' "$OUT/$name.torch.log" | tail -1)
        twin=$(echo "$t" | awk -F'|' '{ split($6, a, " "); split($5, s, " "); printf "| %s / %s | %s |", a[4], a[6], s[1] }')
    fi
    # summary: unet D/U loss L width W depth D size S | P params | E epochs | T s (train X s) | R img/s |
    #          val [(flip TTA)] pet IoU a mIoU b pixel acc c | dir
    rows+=("$(echo "$c" | awk -F'|' -v name="$name" -v twin="$twin" -v ev="$ev" '
        function after(key,   i) { for (i = 1; i < nm; i++) if (m[i] == key) return m[i + 1]; return "?" }
        {
        split($2, p, " "); split($3, e, " "); split($4, t, " "); split($5, r, " "); nm = split($6, m, " ");
        printf "| %s | %s | %s | %s s | %s | %s | %s | %s |%s %s\n", name, p[1], e[1], t[1], r[1], after("IoU"), after("mIoU"), after("acc"), ev, substr(twin, 3) }')")
done
{
    echo "# UNet on Oxford-IIIT Pet: the four seed variants"
    echo
    echo "Recipe: \`$RECIPE\`${STUP_ARGS:+ (strided-upsample: + \`$STUP_ARGS\`)}, device $DEVICE, data \`$DATA\` (validation: the seeded 20 % of the train list that"
    echo "\`unet_pets train\` holds out; the PyTorch twin, when run, uses the same split and evaluates with the eval flags). Made by bench/experiments_unet.sh"
    echo "on $(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -m), $(nproc) CPU threads."
    echo
    if [ -n "$EVAL" ]; then
        echo "| variant | params | epochs | time | img/s | val pet IoU | val mIoU | pixel acc. | pet IoU / mIoU, eval \`$EVAL\` | PyTorch twin pet IoU / mIoU | twin img/s |"
        echo "|---|---|---|---|---|---|---|---|---|---|---|"
    else
        echo "| variant | params | epochs | time | img/s | val pet IoU | val mIoU | pixel acc. | PyTorch twin pet IoU / mIoU | twin img/s |"
        echo "|---|---|---|---|---|---|---|---|---|---|"
    fi
    printf '%s\n' "${rows[@]}"
} > "$OUT/results.md"
echo "wrote $OUT/results.md"
cat "$OUT/results.md"

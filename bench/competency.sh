#!/bin/sh
# PaRCE competency: images per second of rho, and of rho with its gradient to the image, at
# batch 1 and 50, cfx against PyTorch in the same run on the same bundle (the reference
# classifier and autoencoder on 3x32x32 signs, briefly trained; speed does not depend on the
# weights). Usage: bash bench/competency.sh [BUILD_DIR]   (make bench builds the driver)
set -eu
build=${1:-build}
repeats=${REPEATS:-7}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cfx="$build/cfx"
"$cfx" data signs --out "$work/s" --train 50 --calib 20 --test 10 --ood 10 --threads 2 >/dev/null
"$cfx" train classifier --data "$work/s" --out "$work/clf.onnx" --epochs 1 --threads 2 >/dev/null 2>&1
"$cfx" train autoencoder --data "$work/s" --out "$work/ae.onnx" --epochs 1 --threads 2 >/dev/null 2>&1
"$cfx" competency fit --classifier "$work/clf.onnx" --encoder "$work/encoder.onnx" \
    --decoder "$work/decoder.onnx" --data "$work/s" --out "$work/b" --threads 2 >/dev/null
printf '| what | batch | threads | cfx images/s | PyTorch images/s | cfx / PyTorch |\n'
printf '|---|---|---|---|---|---|\n'
for t in 1 2; do
    c=$(OMP_NUM_THREADS=$t "$build/bench/bench_competency" "$work/b" "$t" "$repeats")
    p=$(/usr/bin/python3 bench/competency_torch.py "$work/b" "$t" "$repeats")
    for row in score_b1 grad_b1 score_b50 grad_b50; do
        cv=$(echo "$c" | awk -v n=$row '$1 == n {print $2}')
        pv=$(echo "$p" | awk -v n=$row '$1 == n {print $2}')
        awk -v n="$row" -v t="$t" -v c="$cv" -v p="$pv" 'BEGIN {
            split(n, f, "_b"); what = f[1] == "score" ? "rho" : "rho + gradient";
            printf "| %s | %s | %s | %.0f | %.0f | %.2fx |\n", what, f[2], t, c, p, c / p }'
    done
done

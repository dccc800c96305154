#!/bin/sh
# Training speed of the reference classifier on Fashion-MNIST, cfx against PyTorch in the same
# run, 1 and 2 threads: milliseconds per Adam step at batch 64 (median of REPEATS blocks of 100
# steps), the epoch time that implies, achieved GFLOP/s, the practical peak (the better of two
# 2048^3 SGEMMs on the same threads, measured after each block of steps: median over blocks) and
# the share of it (median of the per-block shares).
# Usage: bash bench/train.sh [BUILD_DIR]   (prepares build/bench-data/fashion-mnist if needed)
set -eu
build=${1:-build}
repeats=${REPEATS:-9}
data=$build/bench-data/fashion-mnist
mkdir -p "$build/bench-data"
[ -f "$data/manifest.json" ] || "$build/cfx" data fashion-mnist --out "$data" >/dev/null
steps=$(awk '/"train"/ { t = 1 } t && /"count"/ { gsub(/[^0-9]/, ""); print int($0 / 64); exit }' "$data/manifest.json")
echo "CPU: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo
printf '| threads | cfx ms/step | PyTorch ms/step | PyTorch / cfx | cfx epoch s | PyTorch epoch s | cfx GFLOP/s | peak GFLOP/s | cfx / peak |\n'
printf '|---|---|---|---|---|---|---|---|---|\n'
for t in 1 2; do
    c=$(OMP_NUM_THREADS=$t "$build/bench/bench_train" "$data" "$t" "$repeats")
    p=$(/usr/bin/python3 bench/train_torch.py "$data" "$t" "$repeats")
    echo $c $p | awk -v t="$t" -v steps="$steps" '
        # fields: step_ms C gflop_per_step G peak_gflops P share_of_peak S step_ms T (cfx, then
        # PyTorch). The share is the median of per-block shares (each block of steps against the
        # peak measured right after it), not the ratio of the two medians.
        {
            cm = $2; gf = $4; peak = $6; share = $8; pm = $10
            ach = gf / (cm / 1000)
            printf "| %d | %.2f | %.2f | %.2fx | %.1f | %.1f | %.1f | %.1f | %.0f%% |\n",
                t, cm, pm, pm / cm, cm * steps / 1000, pm * steps / 1000, ach, peak, 100 * share
        }'
done

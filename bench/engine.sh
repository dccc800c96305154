#!/bin/sh
# Small CNNs at batch 1, forward + backward to the input: cfx against PyTorch in the same run.
# Usage: bash bench/engine.sh [BUILD_DIR]   (make bench builds build/bench/bench_engine)
set -eu
build=${1:-build}
repeats=${REPEATS:-9}
printf '| network | threads | cfx ms | PyTorch ms | PyTorch / cfx |\n|---|---|---|---|---|\n'
for t in 1 2; do
    c=$(OMP_NUM_THREADS=$t "$build/bench/bench_engine" "$t" "$repeats")
    p=$(/usr/bin/python3 bench/engine_torch.py "$t" "$repeats")
    for net in ref tiny; do
        cm=$(echo "$c" | awk -v n=$net '$1 == n {print $2}')
        pm=$(echo "$p" | awk -v n=$net '$1 == n {print $2}')
        awk -v n="$net" -v t="$t" -v c="$cm" -v p="$pm" \
            'BEGIN { printf "| %s | %s | %.4f | %.4f | %.1fx |\n", n, t, c, p, p / c }'
    done
done

#!/bin/sh
# FID and KID of two random feature sets of N x D floats (default 10,000 x 2048, Inception's
# pool features at the size `cfx evaluate` meets with 10,000 counterfactuals): cfx
# (bench_metrics) against pytorch-fid's and torch-fidelity's NumPy/SciPy computation
# (metrics_np.py) on the same .npy files, in the same run, at 1 and 2 threads. Medians of
# REPEATS (default 3). Prints a Markdown table; the values agree where they should (FID to
# rounding; KID's subsets differ: cfx's seeded generator, NumPy's RandomState).
# Usage: bash bench/metrics.sh [BUILD_DIR]   (make bench builds the driver; N, D, REPEATS)
set -eu
build=${1:-build}
n=${N:-10000}
d=${D:-2048}
repeats=${REPEATS:-3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
printf '| %s x %s features | threads | cfx s | NumPy/SciPy s | speed-up |\n' "$n" "$d"
printf '|---|---|---|---|---|\n'
for t in 1 2; do
    c=$(OMP_NUM_THREADS=$t OPENBLAS_NUM_THREADS=$t "$build/bench/bench_metrics" "$work" "$n" "$d" "$t" "$repeats")
    p=$(/usr/bin/python3 bench/metrics_np.py "$work" "$t" "$repeats")
    echo "$c" >"$work/c$t"
    echo "$p" >"$work/p$t"
    for row in fid_s stats_s trace_s trace_eigen_s kid_s fidkid; do
        awk -v row="$row" -v t="$t" '
            FNR == NR { c[$1] = $2; next } { p[$1] = $2 }
            END {
                c["fidkid"] = c["fid_s"] + c["kid_s"]; p["fidkid"] = p["fid_s"] + p["kid_s"]
                p["trace_eigen_s"] = p["trace_s"]
                name["fid_s"] = "FID (statistics of both sets, distance)"
                name["stats_s"] = "  mean and covariance of one set"
                name["trace_s"] = "  tr((S_A S_B)^(1/2)): cfx Cholesky route; SciPy sqrtm"
                name["trace_eigen_s"] = "  the same by the eigendecomposition of S_A; sqrtm"
                name["kid_s"] = "KID (100 subsets of 50)"
                name["fidkid"] = "**FID + KID**"
                printf "| %s | %s | %.3f | %.3f | %.1fx |\n", name[row], t, c[row], p[row], p[row] / c[row]
            }' "$work/c$t" "$work/p$t"
    done
done
echo
for t in 1 2; do
    awk -v t="$t" 'FNR == NR { c[$1] = $2; next } { p[$1] = $2 }
        END { printf "%s thread(s): FID cfx %s, NumPy %s (relative difference %.1e); trace by the two routes %s, %s; KID cfx %s +- %s, NumPy %s +- %s\n",
              t, c["fid"], p["fid"], (c["fid"] - p["fid"]) / p["fid"], c["trace"], c["trace_eigen"], c["kid"], c["kid_std"], p["kid"], p["kid_std"] }' \
        "$work/c$t" "$work/p$t"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

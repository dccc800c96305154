#!/bin/sh
# The five counterfactual methods, cfx (bench_counterfactual) against the PyTorch implementation
# of the reference loops (counterfactual_torch.py, the same ONNX weights and calibration) in the
# same run, on a competency bundle of the reference classifier and autoencoder on 3x32x32 signs:
#  1. per optimisation step (IGD with the L2 distance, FGD, LGD; STEPS updates at a threshold
#     no image reaches, so both sides do the same work) and per image (all five), at batch 1
#     and 50, 1 and 2 threads, medians of REPEATS runs, the better of ROUNDS rounds in which
#     cfx and PyTorch take turns (the machine is shared); achieved GFLOP/s of a step beside the
#     practical peak (the better of three 1024^3 SGEMMs through cfx's GEMM on those threads);
#  2. on real low-competency examples (`cfx competency examples`, PER_CAUSE per cause, the
#     controls left out), at the reference settings (at most 100 updates, threshold 0.9,
#     batches of 50, EX_THREADS threads, default 1): cfx's default per-image stop and the
#     reference's per-batch rule in cfx, and the per-batch rule in PyTorch: seconds per image,
#     success rate (rho >= threshold at the end) and mean updates per image.
# Wall times are medians of REPEATS runs, the better of ROUNDS rounds; a third table gives the
# one-thread runs' process CPU time, which the other jobs on the machine disturb far less.
# The bundle and examples are built once into BUILD_DIR/bench-data/cf-signs (signs with 3,000
# training images per class, 4 epochs each for the classifier and the autoencoder: a few
# minutes; speed does not depend on the weights). CF_BUNDLE and CF_DATA name another bundle and
# the dataset folder it was fitted on instead (e.g. Fashion-MNIST's).
# Usage: bash bench/counterfactual.sh [BUILD_DIR]   (make bench builds the driver)
set -eu
build=${1:-build}
repeats=${REPEATS:-3}
rounds=${ROUNDS:-3}
steps=${STEPS:-10}
per_cause=${PER_CAUSE:-10}
ex_threads=${EX_THREADS:-1}
cfx="$build/cfx"
cache="$build/bench-data/cf-signs"
mkdir -p "$cache"
if [ -n "${CF_BUNDLE:-}" ]; then
    bundle=$CF_BUNDLE
    data=${CF_DATA:?CF_DATA: the dataset folder the bundle was fitted on}
    ex="$cache/ex-$(echo "$bundle" | tr -c 'A-Za-z0-9\n' _)-$per_cause"
else
    bundle="$cache/bundle" data="$cache/signs" ex="$cache/ex-$per_cause"
    if [ ! -f "$bundle/parce.json" ]; then
        echo "building $bundle (signs, classifier and autoencoder; a few minutes)" >&2
        "$cfx" data signs --out "$data" --train 3000 --calib 200 --test 100 --ood 200 \
            --threads 2 --force >/dev/null
        "$cfx" train classifier --data "$data" --out "$cache/clf.onnx" --epochs 4 \
            --threads 2 >/dev/null 2>&1
        "$cfx" train autoencoder --data "$data" --out "$cache/ae.onnx" --epochs 4 \
            --threads 2 >/dev/null 2>&1
        "$cfx" competency fit --classifier "$cache/clf.onnx" --encoder "$cache/encoder.onnx" \
            --decoder "$cache/decoder.onnx" --data "$data" --out "$bundle" --force \
            --threads 2 >/dev/null 2>&1
    fi
fi
if [ ! -f "$ex/images.npy" ]; then
    "$cfx" competency examples --bundle "$bundle" --data "$data" --out "$ex" \
        --per-cause "$per_cause" --force --threads 2 >/dev/null 2>&1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The low-competency examples: every cause but the controls ("none").
/usr/bin/python3 - "$ex" "$work/low.npy" <<'EOF'
import json, sys
import numpy as np
ex, out = sys.argv[1], sys.argv[2]
causes = [json.loads(l)["cause"] for l in open(ex + "/examples.jsonl")]
x = np.load(ex + "/images.npy")
np.save(out, x[[i for i, c in enumerate(causes) if c != "none"]])
EOF

echo "CPU: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "bundle: $bundle ($(sed -n 's/.*"image_shape":[^[]*\[\(.*\)\].*/\1/p' "$bundle/bundle.json" | tr -d ' \t')), $(/usr/bin/python3 bench/counterfactual_torch.py candidates "$bundle") LNN candidates"
echo
# The machine is shared: cfx and PyTorch take turns, ROUNDS times, and each side keeps its best
# round (every round reports medians of REPEATS).
for r in $(seq "$rounds"); do
    for t in 1 2; do
        OMP_NUM_THREADS=$t "$build/bench/bench_counterfactual" steps "$bundle" "$t" "$repeats" \
            "$steps" | sed "s/^/cfx $t /" >>"$work/steps"
        /usr/bin/python3 bench/counterfactual_torch.py steps "$bundle" "$t" "$repeats" "$steps" \
            | sed "s/^/torch $t /" >>"$work/steps"
    done
done
# The best round per side, method, batch and threads, for each time (wall and CPU) on its own.
awk '
    $3 == "peak_gflops" { if ($4 > peak[$2]) peak[$2] = $4; next }
    {
        key = $1 " " $2 " " $3 " " $4
        if (!(key in seen)) { seen[key] = 1; for (i = 1; i <= 9; i++) f[key, i] = $i }
        for (i = 5; i <= 9; i++)
            if ($i != "-" && $i + 0 < f[key, i] + 0) f[key, i] = $i
    }
    END {
        for (k in seen) {
            s = f[k, 1]
            for (i = 2; i <= 9; i++) s = s " " f[k, i]
            print s
        }
        for (t in peak) print "cfx " t " peak_gflops " peak[t]
    }' "$work/steps" >"$work/best"
mv "$work/best" "$work/steps"
echo "Load average after the runs: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "Per optimisation step ($steps updates at a threshold no image reaches; medians of $repeats,"
echo "the better of $rounds rounds that alternate cfx and PyTorch):"
echo
printf '| method | batch | threads | cfx ms/step | PyTorch ms/step | PyTorch / cfx | target | cfx GFLOP/s | PyTorch GFLOP/s | peak GFLOP/s | cfx / peak |\n'
printf '|---|---|---|---|---|---|---|---|---|---|---|\n'
awk '
    $3 == "peak_gflops" { peak[$2] = $4; next }
    {
        key = $3 " " $4 " " $2; img[$1, key] = $5; step[$1, key] = $6
        if ($1 == "cfx") gf[key] = $7 # the FLOPs of a step, counted by the cfx driver
    }
    END {
        n = split("igd fgd lgd", m, " ")
        for (b = 1; b <= 2; b++) for (t = 1; t <= 2; t++) for (i = 1; i <= n; i++) {
            batch = b == 1 ? 1 : 50; key = m[i] " " batch " " t
            c = step["cfx", key]; p = step["torch", key]
            printf "| %s | %d | %d | %.3f | %.3f | %.2fx | %dx | %.1f | %.1f | %.1f | %.0f%% |\n",
                m[i], batch, t, 1e3 * c, 1e3 * p, p / c, batch == 1 ? 5 : 2,
                gf[key] / c, gf[key] / p, peak[t], 100 * gf[key] / c / peak[t]
        }
    }' "$work/steps"
echo
echo "Per image (IGD, FGD, LGD: a run of $steps updates; Reco and LNN: one call; lnn9164: LNN"
echo "among 9,164 candidates, the reference's count, made by repeating the calibration codes):"
echo
printf '| method | batch | threads | cfx ms/image | PyTorch ms/image | PyTorch / cfx | target |\n'
printf '|---|---|---|---|---|---|---|\n'
awk '
    $3 != "peak_gflops" { key = $3 " " $4 " " $2; img[$1, key] = $5 }
    END {
        n = split("igd fgd lgd reco lnn lnn9164", m, " ")
        for (b = 1; b <= 2; b++) for (t = 1; t <= 2; t++) for (i = 1; i <= n; i++) {
            batch = b == 1 ? 1 : 50; key = m[i] " " batch " " t
            c = img["cfx", key]; p = img["torch", key]
            target = m[i] == "reco" ? "2x" : m[i] ~ /^lnn/ ? "10x" : "-"
            printf "| %s | %d | %d | %.3f | %.3f | %.2fx | %s |\n", m[i], batch, t, 1e3 * c,
                1e3 * p, p / c, target
        }
    }' "$work/steps"
echo
echo "One thread, process CPU time (what each side's own work took; it moves much less than wall"
echo "time with the shared machine's load): per step for IGD, FGD and LGD, per image for the rest."
echo
printf '| method | batch | cfx CPU ms | PyTorch CPU ms | PyTorch / cfx | target |\n'
printf '|---|---|---|---|---|---|\n'
awk '
    $2 == 1 && $3 != "peak_gflops" {
        key = $3 " " $4
        cpu[$1, key] = $9 != "-" ? $9 : $8 # per step where there are steps, else per image
    }
    END {
        n = split("igd fgd lgd reco lnn lnn9164", m, " ")
        for (b = 1; b <= 2; b++) for (i = 1; i <= n; i++) {
            batch = b == 1 ? 1 : 50; key = m[i] " " batch
            c = cpu["cfx", key]; p = cpu["torch", key]
            target = m[i] == "reco" ? "2x" : m[i] ~ /^lnn/ ? "10x" : batch == 1 ? "5x" : "2x"
            printf "| %s | %d | %.3f | %.3f | %.2fx | %s |\n", m[i], batch, 1e3 * c, 1e3 * p,
                p / c, target
        }
    }' "$work/steps"
echo
n=$(/usr/bin/python3 -c "import numpy, sys; print(numpy.load(sys.argv[1]).shape[0])" "$work/low.npy")
echo "Low-competency examples ($n from $ex, controls left out), at most 100 updates, batches of 50, $ex_threads threads:"
echo
OMP_NUM_THREADS=$ex_threads "$build/bench/bench_counterfactual" examples "$bundle" "$work/low.npy" \
    "$ex_threads" per-image | sed 's/^/ci /' >"$work/ex"
OMP_NUM_THREADS=$ex_threads "$build/bench/bench_counterfactual" examples "$bundle" "$work/low.npy" \
    "$ex_threads" per-batch | sed 's/^/cb /' >>"$work/ex"
/usr/bin/python3 bench/counterfactual_torch.py examples "$bundle" "$work/low.npy" "$ex_threads" \
    per-batch | sed 's/^/tb /' >>"$work/ex"
printf '| method | cfx per-image: s/image | success | updates | cfx per-batch: s/image | success | updates | PyTorch per-batch: s/image | success | updates |\n'
printf '|---|---|---|---|---|---|---|---|---|---|\n'
awk '
    { s[$1, $2] = $3; ok[$1, $2] = $4; up[$1, $2] = $5 }
    END {
        n = split("igd fgd lgd", m, " "); split("ci cb tb", w, " ")
        for (i = 1; i <= n; i++) {
            printf "| %s", m[i]
            for (k = 1; k <= 3; k++)
                printf " | %.4f | %.0f%% | %.1f", s[w[k], m[i]], 100 * ok[w[k], m[i]], up[w[k], m[i]]
            printf " |\n"
        }
    }' "$work/ex"

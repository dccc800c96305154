#!/bin/sh
# bench/loop.sh - the V-CECE loop's own time per step (cfx concepts edit with the built-in
# editor and an ONNX classifier), phase by phase, and its two pixel phases against NumPy and
# PyTorch on the same inputs in the same run (1 thread, medians).
#
# Usage: bench/loop.sh [BUILD]   (from the repository root)
# 1. cfx data scenes (SCENES scenes, default 2000, 48 pixels, seed 1), cfx train classifier
#    (EPOCHS, default 8), then cfx concepts edit in each mode on LOOPS test scenes (default 40);
#    from results.jsonl's per-image "seconds": the median per loop of ordering the edits, and
#    per step of planning (local mode), editing and classifying (per classifier call).
# 2. build/bench/bench_loop and bench/loop_torch.py on the first N test scenes (default 50):
#    removal (dilate + inpaint) per object and classification per image; both check that their
#    outputs agree with cfx's (the NumPy port of the inpainting is exact; probabilities to ~1e-6).
set -eu
B=${1:-build}
scenes=${SCENES:-2000}
epochs=${EPOCHS:-8}
loops=${LOOPS:-40}
n=${N:-50}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
make -s "$B/cfx" "$B/bench/bench_loop" >&2
cfx=$B/cfx
"$cfx" data scenes --out "$tmp/scenes" --count "$scenes" --size 48 --seed 1 >/dev/null
"$cfx" train classifier --data "$tmp/scenes" --out "$tmp/clf.onnx" --epochs "$epochs" \
    --threads 1 | tail -2 | head -1 >&2
for mode in local global local-global; do
    OMP_NUM_THREADS=1 "$cfx" concepts edit --data "$tmp/scenes/concepts.json" \
        --images "$tmp/scenes" --labels rule --classifier "$tmp/clf.onnx" --mode "$mode" --all \
        --split test --limit "$loops" --out "$tmp/run-$mode" --threads 1 >&2
done
echo "loop phases, medians over $loops test scenes per mode (ms):"
/usr/bin/python3 - "$tmp" <<'EOF'
import json, sys
import numpy as np
d = sys.argv[1]
print("| mode | loops | steps/loop | order (per loop) | plan (per step) | edit (per step) | classify (per call) | loop total (per step) |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for mode in ("local", "global", "local-global"):
    recs = [json.loads(l) for l in open(f"{d}/run-{mode}/results.jsonl")]
    recs = [r for r in recs if r["steps"] > 0]
    s = lambda k, div: np.median([r["seconds"][k] / div(r) for r in recs]) * 1e3
    per = lambda r: r["steps"]
    tot = np.median([sum(r["seconds"].values()) / r["steps"] for r in recs]) * 1e3
    print(f"| {mode} | {len(recs)} | {np.mean([r['steps'] for r in recs]):.2f} | "
          f"{s('order', lambda r: 1):.3f} | {s('plan', per):.3f} | {s('edit', per):.3f} | "
          f"{s('classify', lambda r: r['steps'] + 1):.3f} | {tot:.3f} |")
EOF
OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 "$B/bench/bench_loop" "$tmp/scenes" "$tmp/clf.onnx" "$n" \
    "$tmp" > "$tmp/cfx.txt"
OMP_NUM_THREADS=1 /usr/bin/python3 bench/loop_torch.py "$tmp/scenes" "$tmp/clf.onnx" "$n" "$tmp" \
    > "$tmp/py.txt"
v() { awk -v k="$1" '$1 == k { print $2 }' "$2"; }
echo
echo "pixel phases on $(v images "$tmp/cfx.txt") test scenes ($(v objects "$tmp/cfx.txt") objects, $(v size "$tmp/cfx.txt")), 1 thread, medians:"
echo "| phase | cfx (ms) | NumPy / PyTorch (ms) | ratio | outputs agree |"
echo "| --- | --- | --- | --- | --- |"
awk -v c="$(v inpaint_median "$tmp/cfx.txt")" -v p="$(v inpaint_median "$tmp/py.txt")" \
    -v d="$(v inpaint_maxdiff "$tmp/py.txt")" \
    'BEGIN { printf "| removal: inpaint the dilated mask (exact NumPy port) | %.3f | %.3f | %.0fx | max diff %s |\n", c * 1e3, p * 1e3, p / c, d }'
awk -v c="$(v classify_median "$tmp/cfx.txt")" -v p="$(v classify_median "$tmp/py.txt")" \
    -v d="$(v probs_maxdiff "$tmp/py.txt")" \
    'BEGIN { printf "| classify one image (PyTorch) | %.3f | %.3f | %.2fx | max diff %s |\n", c * 1e3, p * 1e3, p / c, d }'

#!/bin/sh
# bench/models.sh - forward passes of whole models: cfx against ONNX Runtime and PyTorch in the
# same run (issue 24).
#
# Usage: bench/models.sh   (from the repository root; prints Markdown tables)
# Models: torchvision resnet18, mobilenet_v2 and squeezenet1_1 (random weights, seed 0, exported
# by torch.onnx.export with a symbolic batch: no downloads) and cfx's own classifier and
# autoencoder (`cfx train`, 1 epoch on a tiny signs set at 32x32: the architecture is what is
# timed, not the weights). Each (model, batch, threads) row runs the three peers one after
# another, each in its own process (W warm-up passes, then R timed passes; the process's median);
# the order of the peers rotates from row to row and round to round so that the load of the
# machine falls on all three alike, and with ROUNDS > 1 a row reports the median of the rounds'
# medians.
#   cfx:          build/cfx model bench FILE --batch B --threads T --runs R --warmup W --json
#   ONNX Runtime: npm's onnxruntime-node (bench/models_ort.js; graph optimisations 'all',
#                 intraOpNumThreads T, interOpNumThreads 1), installed under build/ortnode with
#                 `npm install --ignore-scripts` when missing
#   PyTorch:      /usr/bin/python3 bench/models_torch.py (torch.set_num_threads(T), no_grad)
# Times: wall (monotonic clock) and CPU (process CPU time: clock_gettime(CLOCK_PROCESS_CPUTIME_ID),
# process.cpuUsage, time.process_time) a pass. The CPU time is the fair measure of 1-thread rows on
# a loaded machine (waiting for a core is not counted); multi-thread rows are compared by wall
# time only (idle threads that spin are counted as CPU). Ratios are cfx's time divided by the
# peer's: above 1 means cfx is slower.
# Before timing, the three run the same batch of 2 seeded inputs and the largest absolute
# differences of their outputs are printed, so that all three are known to time the same model.
# Rows where cfx is slower than ONNX Runtime get cfx's per-op profile (CFX_PROFILE=1, 3 passes):
# the time by op type.
# Environment: RUNS (default 10), WARMUP (2), ROUNDS (1), MODELS, BATCHES ("1 32"),
# THREADS ("1 2"), PROFILE (1; 0 for no profiles), ORT_VERSION (1.31.1).
set -eu
runs=${RUNS:-10}
warm=${WARMUP:-2}
rounds=${ROUNDS:-1}
models=${MODELS:-resnet18 mobilenet_v2 squeezenet1_1 classifier autoencoder}
batches=${BATCHES:-1 32}
threads_list=${THREADS:-1 2}
profile=${PROFILE:-1}
ort_version=${ORT_VERSION:-1.31.1}
py=/usr/bin/python3
cfx=${BUILD:-build}/cfx
ort_dir=build/ortnode
D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT

make -s "$cfx" >&2
if [ ! -d "$ort_dir/node_modules/onnxruntime-node" ]; then
    echo "installing onnxruntime-node@$ort_version into $ort_dir" >&2
    mkdir -p "$ort_dir"
    (cd "$ort_dir" && npm install --ignore-scripts --no-audit --no-fund --silent \
        "onnxruntime-node@$ort_version") >&2
fi
NODE_PATH=$(cd "$ort_dir" && pwd)/node_modules
export NODE_PATH
ort_have=$(node -e 'console.log(require("onnxruntime-node/package.json").version)')

echo "making the models" >&2
"$py" bench/models_torch.py export "$D"
"$cfx" data signs --out "$D/s" --size 32 --train 20 --calib 2 --test 2 --ood 2 --seed 1 \
    --threads 1 > /dev/null
"$cfx" train classifier --data "$D/s" --out "$D/classifier.onnx" --epochs 1 --batch 16 \
    --threads 1 > /dev/null
"$cfx" train autoencoder --data "$D/s" --out "$D/autoencoder.onnx" --epochs 1 --batch 16 \
    --threads 1 > /dev/null

echo "## Outputs on the same 2 inputs (largest absolute difference)"
echo
echo "| model | cfx vs PyTorch | ORT vs PyTorch | cfx vs ORT | largest abs output |"
echo "| --- | --- | --- | --- | --- |"
for m in $models; do
    "$py" bench/models_torch.py input "$D" "$m"
    "$py" bench/models_torch.py run "$D" "$m"
    node bench/models_ort.js run "$D/$m.onnx" "$(cat "$D/$m.shape")" "$D/$m.in.f32" "$D/$m.ort.f32"
    "$cfx" model run "$D/$m.onnx" --input "$D/$m.in.npy" --out "$D/$m.cfx.npy" > /dev/null
    set -- $("$py" bench/models_torch.py compare "$D" "$m")
    echo "| $m | $1 | $2 | $3 | $4 |"
done
echo

# One peer's process for one row: appends "model batch threads peer wall_s cpu_s".
run_peer() { # peer model batch threads
    case $1 in
    cfx) out=$("$cfx" model bench "$D/$2.onnx" --batch "$3" --threads "$4" --runs "$runs" \
        --warmup "$warm" --json) ;;
    ort) out=$(node bench/models_ort.js time "$D/$2.onnx" "$(cat "$D/$2.shape")" "$3" "$4" \
        "$runs" "$warm") ;;
    torch) out=$("$py" bench/models_torch.py time "$D" "$2" "$3" "$4" "$runs" "$warm") ;;
    esac
    echo "$out" | "$py" -c 'import json, sys; j = json.load(sys.stdin); print(j["median_s"], j["cpu_median_s"])' |
        sed "s/^/$2 $3 $4 $1 /" >> "$D/times"
}

: > "$D/times"
row=0
r=0
while [ "$r" -lt "$rounds" ]; do
    for m in $models; do
        for b in $batches; do
            for t in $threads_list; do
                case $(((row + r) % 3)) in
                0) order="cfx ort torch" ;;
                1) order="ort torch cfx" ;;
                *) order="torch cfx ort" ;;
                esac
                for p in $order; do run_peer "$p" "$m" "$b" "$t"; done
                echo "round $((r + 1)) $m batch $b threads $t done" >&2
                row=$((row + 1))
            done
        done
    done
    r=$((r + 1))
done

echo "## Forward pass, median ms a pass (wall; CPU in brackets on 1-thread rows), $runs runs after $warm warm-up, $rounds round(s)"
echo
echo "cfx/ORT and cfx/PyTorch are time ratios (cfx divided by the peer): above 1 means cfx is slower."
echo "1-thread rows compare CPU time, multi-thread rows wall time. ONNX Runtime $ort_have (onnxruntime-node)."
echo
echo "| model | batch | threads | cfx ms | ORT ms | PyTorch ms | cfx/ORT | cfx/PyTorch |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
"$py" - "$D/times" "$models" "$batches" "$threads_list" > "$D/table" <<'EOF'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    m, b, t, p, w, c = line.split()
    rows.setdefault((m, b, t, p), []).append((float(w), float(c)))
for m in sys.argv[2].split():
    for b in sys.argv[3].split():
        for t in sys.argv[4].split():
            med = {p: (statistics.median(v[0] for v in rows[(m, b, t, p)]),
                       statistics.median(v[1] for v in rows[(m, b, t, p)]))
                   for p in ("cfx", "ort", "torch")}
            k = 1 if t == "1" else 0  # the time compared: CPU on 1 thread, else wall
            cell = lambda p: ("%.2f (%.2f)" % (1e3 * med[p][0], 1e3 * med[p][1]) if t == "1"
                              else "%.2f" % (1e3 * med[p][0]))
            ro, rt = med["cfx"][k] / med["ort"][k], med["cfx"][k] / med["torch"][k]
            print("| %s | %s | %s | %s | %s | %s | %.2f | %.2f |" % (
                m, b, t, cell("cfx"), cell("ort"), cell("torch"), ro, rt))
EOF
cat "$D/table"
echo

[ "$profile" = 1 ] || exit 0
awk -F' [|] ' '$7 + 0 > 1 { print $1, $2, $3 }' "$D/table" | sed 's/^| //' > "$D/slow"
[ -s "$D/slow" ] || exit 0
echo "## Where cfx's time goes on the rows where it is slower than ONNX Runtime"
echo
echo "CFX_PROFILE=1, 3 passes after 1 warm-up: the share of the time in ops, by op type (largest first)."
echo
echo "| model | batch | threads | by op type |"
echo "| --- | --- | --- | --- |"
while read -r m b t; do
    CFX_PROFILE=1 "$cfx" model bench "$D/$m.onnx" --batch "$b" --threads "$t" --runs 3 --warmup 1 \
        --json 2> "$D/prof" > /dev/null
    ops=$(awk 'NR > 2 && $NF ~ /%$/ { s[$1] += $NF + 0 } END { for (o in s) printf "%s %.1f\n", o, s[o] }' "$D/prof" |
        sort -k2 -n -r | head -n 6 | awk '{ printf "%s%s %s%%", (NR > 1 ? ", " : ""), $1, $2 }')
    echo "| $m | $b | $t | $ops |"
done < "$D/slow"

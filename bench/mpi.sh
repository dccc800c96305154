#!/bin/sh
# Strong scaling of `cfx counterfactual` under mpirun (issue 23): one job (IGD, LGD and best on
# 64 images of 3x32x32 signs, 50 steps, batches of 8, one thread per rank) run by the plain
# build and by build/cfx-mpi at 1, 2 and 4 ranks; wall time, images per second, the speed-up,
# and whether the files are those of one process (results.jsonl without its seconds). On a
# machine of 2 cores, 4 ranks oversubscribe: the line says how many cores there are.
# Usage: bash bench/mpi.sh [BUILD_DIR]   (make mpi builds cfx-mpi)
set -eu
build=${1:-build}
cfx="$build/cfx"
if [ ! -x "$build/cfx-mpi" ] || ! command -v mpirun >/dev/null 2>&1 || [ ! -x /usr/bin/time ]; then
    echo "bench/mpi.sh: needs $build/cfx-mpi and mpirun (make mpi builds and installs them) and"
    echo "/usr/bin/time (Debian's time); skipped"
    exit 0
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$cfx" data signs --out "$work/s" --train 200 --calib 40 --test 80 --ood 10 --seed 1 \
    --threads 2 >/dev/null
"$cfx" train classifier --data "$work/s" --out "$work/clf.onnx" --epochs 1 --threads 2 >/dev/null 2>&1
"$cfx" train autoencoder --data "$work/s" --out "$work/ae.onnx" --epochs 1 --threads 2 >/dev/null 2>&1
"$cfx" competency fit --classifier "$work/clf.onnx" --encoder "$work/encoder.onnx" \
    --decoder "$work/decoder.onnx" --data "$work/s" --out "$work/b" --threads 2 >/dev/null 2>&1
args="--bundle $work/b --images $work/s/test_images.npy --all --limit 64 --method igd,lgd,best
      --threshold 0.999 --max-iter 50 --batch 8 --threads 1"
strip() { sed 's/"seconds": [0-9.]*//' "$1"; }
# Runs a command; prints its wall seconds and CPU seconds (user + system of it and every process
# it waited for: mpirun waits for its ranks).
timed() {
    /usr/bin/time -f '%e %U %S' -o "$work/time" "$@" >/dev/null 2>&1
    awk '{print $1, $2 + $3}' "$work/time"
}

# shellcheck disable=SC2086
set -- $(timed "$cfx" counterfactual $args --out "$work/one")
one=$1
strip "$work/one/results.jsonl" >"$work/one.txt"
printf 'cores: %s, load average %s; 64 images, IGD + LGD + best, 50 steps, batch 8, 1 thread per rank\n' \
    "$(nproc)" "$(cut -d' ' -f1 /proc/loadavg)"
printf '| program | ranks | seconds | images/s | speed-up | CPU seconds, all ranks | same files as one process |\n'
printf '|---|---|---|---|---|---|---|\n'
awk -v s="$1" -v c="$2" 'BEGIN {printf "| cfx | 1 | %.2f | %.1f | 1.00x | %.1f | - |\n", s, 64 / s, c}'
for n in 1 2 4; do
    # shellcheck disable=SC2086
    set -- $(timed mpirun --oversubscribe -n "$n" "$build/cfx-mpi" counterfactual $args \
        --out "$work/r$n")
    same=no
    strip "$work/r$n/results.jsonl" | cmp -s - "$work/one.txt" &&
        cmp -s "$work/one/counterfactuals_best.npy" "$work/r$n/counterfactuals_best.npy" && same=yes
    awk -v s="$1" -v c="$2" -v o="$one" -v n="$n" -v same="$same" 'BEGIN {
        printf "| cfx-mpi | %d | %.2f | %.1f | %.2fx | %.1f | %s |\n", n, s, 64 / s, o / s, c, same }'
done

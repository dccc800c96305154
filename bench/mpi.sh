#!/bin/sh
# bench/mpi.sh - cfx under mpirun (issue 23).
# 1. Strong scaling of `cfx counterfactual`: one job (IGD, LGD and best on 64 images of 3x32x32
#    signs, 50 steps, batches of 8, one thread per rank) run by the plain build and by
#    build/cfx-mpi at 1, 2 and 4 ranks; wall time, images per second, the speed-up, and whether
#    the files are those of one process (results.jsonl without its seconds).
# 2. The same for `cfx concepts nearest --all` over 8000 VG-like images (made from
#    data/vg_random.json), and the balance: each rank's seconds of search when the queries are
#    shared by count (CFX_MPI_BALANCE=count) and by estimated cost (the default).
# 3. A simulated two-node run: 2 ranks bound to disjoint cores (--bind-to core), talking over
#    TCP (--mca btl self,tcp) instead of shared memory; each rank's time of work and time in MPI
#    calls (CFX_MPI_STATS=1, MPI_Wtime around every call).
# On a machine of 2 cores, 4 ranks oversubscribe: the first line says how many cores there are
# and the load.
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

# ---------------------------------------------------------------- 2. concepts nearest ---
python3 - "$work/vg.json" <<'PY'
import json, random, sys
src = json.load(open("data/vg_random.json"))["images"]
random.seed(1)
out = []
for i in range(8000):  # halves of two random VG images, the first one's label
    a, b = random.choice(src), random.choice(src)
    objs = a["objects"][: len(a["objects"]) // 2 + 1] + b["objects"][len(b["objects"]) // 2 :]
    out.append({"id": i, "objects": objs, "labels": {"k": a["labels"]["claude-3-haiku"]}})
json.dump({"images": out}, open(sys.argv[1], "w"))
PY
nargs="--data $work/vg.json --labels k --all --threads 1"
# shellcheck disable=SC2086
set -- $(timed "$cfx" concepts nearest $nargs --out "$work/n1.jsonl")
one=$1
printf '\ncfx concepts nearest --all, 8000 images, 1 thread per rank; load average %s\n' \
    "$(cut -d' ' -f1 /proc/loadavg)"
printf '| program | ranks | seconds | queries/s | speed-up | CPU seconds, all ranks | same file as one process |\n'
printf '|---|---|---|---|---|---|---|\n'
awk -v s="$1" -v c="$2" 'BEGIN {printf "| cfx | 1 | %.2f | %.0f | 1.00x | %.1f | - |\n", s, 8000 / s, c}'
for n in 1 2 4; do
    # shellcheck disable=SC2086
    set -- $(timed mpirun --oversubscribe -n "$n" "$build/cfx-mpi" concepts nearest $nargs \
        --out "$work/m$n.jsonl")
    same=no
    cmp -s "$work/n1.jsonl" "$work/m$n.jsonl" && same=yes
    awk -v s="$1" -v c="$2" -v o="$one" -v n="$n" -v same="$same" 'BEGIN {
        printf "| cfx-mpi | %d | %.2f | %.0f | %.2fx | %.1f | %s |\n", n, s, 8000 / s, o / s, c, same }'
done
# Each rank's CPU seconds of search (CFX_MPI_STATS lines; wall seconds mean little on a loaded
# machine), by count and by estimated cost.
printf '\n| ranks | shared by | CPU seconds of search per rank | slowest / mean |\n|---|---|---|---|\n'
for n in 2 4; do
    for how in count cost; do
        # shellcheck disable=SC2086
        CFX_MPI_BALANCE=$how CFX_MPI_STATS=1 mpirun --oversubscribe -n "$n" -x CFX_MPI_BALANCE \
            -x CFX_MPI_STATS "$build/cfx-mpi" concepts nearest $nargs >/dev/null 2>"$work/stats"
        grep 'rank [0-9]* of' "$work/stats" | sort -t' ' -k5n | tr -d '(' |
            awk -v n="$n" -v how="$how" '{ for (i = 1; i < NF; i++) if ($(i + 1) == "CPU" && $(i + 2) == "s),") w[NR] = $i }
            END { s = ""; m = 0; t = 0; for (k = 1; k <= NR; k++) { s = s sprintf("%s%.2f", k > 1 ? ", " : "", w[k]); t += w[k]; if (w[k] > m) m = w[k] }
                  printf "| %d | %s | %s | %.2f |\n", n, how, s, m / (t / NR) }'
    done
done

# ---------------------------------------------------- 3. two simulated nodes over TCP ---
printf '\nTwo ranks on disjoint cores over TCP (--bind-to core --mca btl self,tcp), per rank:\n'
sim="mpirun --bind-to core --map-by core --mca btl self,tcp -n 2 -x CFX_MPI_STATS"
# shellcheck disable=SC2086
CFX_MPI_STATS=1 $sim "$build/cfx-mpi" counterfactual $args --out "$work/sim" >/dev/null \
    2>"$work/stats" || true
grep 'rank [0-9]* of' "$work/stats" | sort || echo "(no per-rank lines: binding refused?)"
# shellcheck disable=SC2086
CFX_MPI_STATS=1 $sim "$build/cfx-mpi" concepts nearest $nargs >/dev/null 2>"$work/stats" || true
grep 'rank [0-9]* of' "$work/stats" | sort || echo "(no per-rank lines: binding refused?)"

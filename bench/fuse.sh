#!/bin/sh
# fuse.sh - graph optimisation on and off (CFX_NO_FUSE=1) in the same run: `cfx model bench` on
# torchvision's resnet18, mobilenet_v2 and squeezenet1_1 (bench/fuse_export.py), 1 thread,
# batch 1 and 32. Prints the median wall time and the CPU time a pass ((CPU of 1 + R passes -
# CPU of 1 pass) / R, each a fresh process), which stays meaningful when other jobs load the
# machine.   bash bench/fuse.sh   (BUILD=build-x for another build folder; MODELS=, BATCHES=
# to run fewer rows)
set -e
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
make -s BUILD="$BUILD" "$BUILD/cfx" >&2
D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT
OMP_NUM_THREADS=1 /usr/bin/python3 bench/fuse_export.py "$D"
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| model | batch | fusions | median ms | CPU ms a pass | median ms, CFX_NO_FUSE=1 | CPU ms, CFX_NO_FUSE=1 |"
echo "| --- | ---: | --- | ---: | ---: | ---: | ---: |"
for m in ${MODELS:-resnet18_bn resnet18 mobilenet_v2_bn squeezenet1_1}; do
    for b in ${BATCHES:-1 32}; do
        r=10
        [ "$b" = 32 ] && r=3
        F=$("$BUILD/cfx" model info "$D/$m.onnx" | sed -n 's/^  fusions: //p')
        row="| $m | $b | $F"
        for nf in 0 1; do
            row="$row | $(CFX_NO_FUSE=$nf OMP_NUM_THREADS=1 /usr/bin/python3 - "$BUILD/cfx" "$D/$m.onnx" "$b" "$r" <<'PY'
import json, os, resource, subprocess, sys
cfx, model, b, r = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
def run(n):
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run([cfx, "model", "bench", model, "--batch", b, "--threads", "1",
                          "--warmup", "1", "--runs", str(n), "--json"],
                         capture_output=True, text=True, check=True).stdout
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return json.loads(out)["median_s"], cpu
_, c1 = run(1)
med, c2 = run(1 + r)
print("%.1f | %.1f" % (1e3 * med, 1e3 * (c2 - c1) / r))
PY
)"
        done
        echo "$row |"
    done
done

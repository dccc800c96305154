#!/bin/sh
# conv.sh - Conv forward + backward (data, weights, bias) in cfx (default path and the im2col +
# GEMM reference) against PyTorch (its best of NCHW and channels_last, mkldnn on), at 1 and 2
# threads. Prints a Markdown table of medians over REPS runs (each run averages enough
# iterations for about 0.2 s) and the ratio cfx/PyTorch (below 1: cfx is faster).
#   bash bench/conv.sh            (BUILD=build-x to use another build folder, REPS=7)
set -e
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
REPS=${REPS:-7}
CASES="64,32,32,28,28 64,32,32,64,64 small"
make -s BUILD="$BUILD" "$BUILD/bench/bench_conv" >&2
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for t in 1 2; do
    "$BUILD/bench/bench_conv" --threads "$t" --reps "$REPS" $CASES >>"$out"
    /usr/bin/python3 bench/conv_torch.py --threads "$t" --reps "$REPS" $CASES >>"$out"
done
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo
awk '
function label(c) {
    if (c == "small") return "1x1x28x28 -> 32, fwd + bwd to x"
    split(c, d, ","); return d[1] "x" d[2] "x" d[4] "x" d[5] " -> " d[3] ", fwd + bwd"
}
{ key = $2 SUBSEP $3; v[$1 SUBSEP $4 SUBSEP key] = $5; if (!(key in seen)) { seen[key] = 1; order[n++] = key } }
END {
    print "| 3x3 conv, pad 1 | threads | cfx ms | cfx im2col ms | PyTorch NCHW ms | PyTorch channels_last ms | cfx / best PyTorch |"
    print "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    for (i = 0; i < n; i++) {
        split(order[i], k, SUBSEP)
        c = v["cfx" SUBSEP "onednn" SUBSEP order[i]]; r = v["cfx" SUBSEP "im2col" SUBSEP order[i]]
        a = v["torch" SUBSEP "contiguous" SUBSEP order[i]]; b = v["torch" SUBSEP "channels_last" SUBSEP order[i]]
        best = (a < b) ? a : b
        printf "| %s | %s | %.3f | %.3f | %.3f | %.3f | %.2f |\n", label(k[1]), k[2], c, r, a, b, c / best
    }
}' "$out"

#!/bin/sh
# ONNX import and resnet18 forward, cfx vs PyTorch in the same run (1 thread, medians).
# usage: bench/onnx.sh [BUILD]   (after `make BUILD/bench/bench_onnx`)
set -e
B=${1:-build}
D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT
T=$(OMP_NUM_THREADS=1 /usr/bin/python3 bench/onnx_torch.py "$D")
set -- $(OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 "$B/bench/bench_onnx" "$D/big.onnx" "$D/resnet18.onnx")
SIZE=$(du -m "$D/big.onnx" | cut -f1)
echo "| measure | cfx | PyTorch | ratio |"
echo "| --- | --- | --- | --- |"
echo "| import ${SIZE} MB ONNX (s) | $1 | | |"
awk -v c="$2" -v t="$T" 'BEGIN { printf "| resnet18 forward 1x3x224x224, 1 thread (s) | %.4f | %.4f | %.2f |\n", c, t, c / t }'

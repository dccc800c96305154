#!/bin/sh
# Installs the Debian packages a make target needs, only those that are missing.
# Usage: scripts/deps.sh build|data|test|bench|fuzz|mpi
# Runs apt-get update once, and only when something has to be installed.
set -eu

# The last three are what cfx opens with dlopen when first needed (libcurl.so.4, libopenblas.so.0,
# liblapacke.so.3): the -dev packages give their headers, these the libraries a built cfx runs on.
build="gcc make pkg-config libopenblas-dev libdnnl-dev libstb-dev libprotobuf-c-dev
protobuf-c-compiler libcjson-dev libcurl4-openssl-dev liblapacke-dev zlib1g-dev
libcurl4 libopenblas0 liblapacke"
data="wordnet-base dataset-fashion-mnist fonts-dejavu-core"
test="python3 python3-numpy python3-torch python3-onnx python3-scipy python3-nltk python3-torchvision python3-pil chromium"
# make fuzz: clang with libFuzzer and the sanitizers' runtimes, OpenMP for clang; the seeds are
# written by cfx and by Python (ONNX, PyTorch's exporter, Pillow).
fuzz="clang-14 libclang-rt-14-dev libomp-14-dev python3 python3-numpy python3-onnx python3-torch python3-pil"
mpi="libopenmpi-dev openmpi-bin"

want=""
for set in "$@"; do
    case "$set" in
        build) want="$want $build" ;;
        data) want="$want $data" ;;
        test) want="$want $build $data $test $mpi" ;;
        bench) want="$want $build $data $test" ;;
        fuzz) want="$want $build $data $fuzz" ;;
        mpi) want="$want $build $mpi" ;;
        *) echo "deps.sh: unknown set '$set' (build, data, test, bench, fuzz, mpi)" >&2; exit 2 ;;
    esac
done

missing=""
for p in $want; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
    echo "deps.sh: these Debian packages are missing:$missing" >&2
    echo "deps.sh: run as root, or install them with: sudo apt-get install -y --no-install-recommends$missing" >&2
    exit 1
fi
echo "deps.sh: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >&2
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing >&2

#!/bin/sh
# Runs every benchmark driver in bench/*.sh; each compares cfx with a peer in the same run.
set -eu
build=${1:-build}
for b in bench/*.sh; do
    echo "== $b"
    bash "$b" "$build"
done

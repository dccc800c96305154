#!/bin/sh
# Runs every benchmark driver in bench/*.sh; each compares cfx with a peer in the same run.
set -eu
build=${1:-build}
for b in bench/*.sh; do
    echo "== $b"
    case $b in
        # Its arguments are the data file and label key (defaults: the built-in VG data).
        bench/concepts.sh) bash "$b" ;;
        *) BUILD="$build" bash "$b" "$build" ;;
    esac
done

#!/bin/sh
# Runs each fuzz target for SECONDS on its corpus (BUILD/corpus/<target>, where new inputs are
# kept) and its regression inputs (tests/data/fuzz-regressions/<target>, replayed first), with
# ASan, UBSan and leak checks, one thread, 2 GiB of memory and a per-target input size limit.
# Prints per target: executions, seconds, findings; a finding's input is kept as
# BUILD/findings/<target>-crash-<sha1> (or leak-, timeout-, oom-). Exits non-zero on any finding.
# Each run's numbers are appended to BUILD/fuzz-totals.tsv (target, executions, seconds, findings).
# usage: fuzz/run.sh BUILD SECONDS TARGET...
set -u
build=$1
seconds=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
regress="$here/../tests/data/fuzz-regressions"
mkdir -p "$build/findings" "$build/logs"
# The targets write each input to a file: in memory when /dev/shm is there.
if [ -z "${TMPDIR:-}" ] && [ -w /dev/shm ]; then export TMPDIR=/dev/shm; fi
total=0
for t in "$@"; do
    case "$t" in
        checkpoint) max=4096 ;;
        npy | idx | image | concepts | manifest | llm | wordnet) max=65536 ;;
        *) max=262144 ;;
    esac
    mkdir -p "$build/corpus/$t"
    dirs="$build/corpus/$t"
    [ -d "$regress/$t" ] && dirs="$dirs $regress/$t"
    log="$build/logs/$t.log"
    start=$(date +%s)
    # shellcheck disable=SC2086
    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \
        ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
        UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        "$build/fuzz/$t" -max_total_time="$seconds" -rss_limit_mb=2048 -malloc_limit_mb=2048 \
        -max_len="$max" -timeout=60 -print_final_stats=1 \
        -artifact_prefix="$build/findings/$t-" $dirs >"$log" 2>&1
    rc=$?
    end=$(date +%s)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    found=0
    if [ $rc -ne 0 ]; then
        found=1
        total=$((total + 1))
    fi
    printf 'fuzz %-10s %12s executions in %5d s, %d findings%s\n' "$t" "${execs:-?}" \
        $((end - start)) $found "$([ $found = 0 ] || echo " (exit $rc; see $log and $build/findings/)")"
    printf '%s\t%s\t%d\t%d\n' "$t" "${execs:-0}" $((end - start)) $found >>"$build/fuzz-totals.tsv"
    if [ $found != 0 ]; then grep -m 3 -E 'ERROR|runtime error|SUMMARY' "$log" | sed 's/^/    /'; fi
done
[ $total = 0 ] || { echo "fuzz: $total targets had findings" >&2; exit 1; }

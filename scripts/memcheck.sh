#!/bin/sh
# Runs every test of the suite (or those matching the arguments) under valgrind's memcheck, each
# test in its own valgrind process, JOBS at a time, and prints a line per test and a summary.
# A test fails on any memcheck error or a definite leak, or when it runs past MEMCHECK_TIMEOUT
# seconds (default 3600); its log is kept in BUILD/memcheck/.
# usage: scripts/memcheck.sh BUILD JOBS [SUITE | SUITE/NAME ...]
set -u
build=$1
jobs=$2
shift 2
logs="$build/memcheck"
rm -rf "$logs"
mkdir -p "$logs"
"$build/cfx_tests" --list "$@" >"$logs/tests" || {
    echo "memcheck: cannot list the tests of $build/cfx_tests" >&2
    exit 2
}
limit=${MEMCHECK_TIMEOUT:-3600}
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 CFX_TEST_FAST=1 logs build limit
start=$(date +%s)
# One valgrind a test; each writes "rc seconds name" to its own status file.
xargs -P "$jobs" -I{} sh -c '
    t="$1"; f="$logs/$(echo "$t" | tr / _)"; s=$(date +%s)
    timeout "$limit" valgrind -q --error-exitcode=99 --suppressions=tests/valgrind.supp --leak-check=full \
        --errors-for-leak-kinds=definite "$build/cfx_tests" "$t" >"$f.log" 2>&1
    rc=$?; e=$(( $(date +%s) - s ))
    case $rc in 0) w=ok ;; 99) w=ERRORS ;; 124) w=TIMEOUT ;; *) w=FAIL ;; esac
    printf "%-6s %4ds %s\n" "$w" "$e" "$t"
    echo "$rc" >"$f.rc"' _ {} <"$logs/tests"
total=$(wc -l <"$logs/tests")
# A test without a status file did not run to the end (xargs stops when one is killed): not clean.
clean=$(cat "$logs"/*.rc 2>/dev/null | grep -c '^0$')
bad=$((total - clean))
echo "memcheck: $total tests, $((total - bad)) clean, $bad failed or with errors, in $(( $(date +%s) - start )) s"
[ "$bad" -eq 0 ]

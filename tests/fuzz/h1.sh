#!/usr/bin/env bash
# h1.sh - runs the HTTP/1.1 codec fuzzer ($RINGMESH_BUILD/fuzz/h1_fuzz) for 20 seconds over a
# copy of tests/fuzz/corpus/h1 and prints TAP. Skips when the fuzzer was not built (needs
# clang). The corpus is copied to a scratch directory that is removed on exit, so a run
# leaves no files behind; only a crashing input is kept, in $RINGMESH_BUILD/fuzz/artifacts/.
set -u
cd "$(dirname "$0")/../.."
source tests/lib/tap.sh
build=${RINGMESH_BUILD:-build}
fuzzer=$build/fuzz/h1_fuzz
if [ ! -x "$fuzzer" ]; then
    skip "h1 fuzzer not built (make $fuzzer)"
    tap_done
    exit
fi
work=$(mktemp -d /tmp/ringmesh-fuzz-h1.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus" "$build/fuzz/artifacts"
cp tests/fuzz/corpus/h1/* "$work/corpus/"
log=$work/log
if "$fuzzer" -max_total_time=20 -max_len=4096 -timeout=10 -rss_limit_mb=1024 \
    -print_final_stats=1 -artifact_prefix="$build/fuzz/artifacts/h1-" \
    "$work/corpus" >"$log" 2>&1; then
    runs=$(grep -o 'number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$')
    ok "h1 fuzzer: 20 s without a finding (${runs:-?} runs)"
else
    not_ok "h1 fuzzer found a crash" "$(grep -m1 -E 'ERROR|runtime error|SUMMARY|deadly' "$log")"
    grep -E 'Test unit written|artifact' "$log" | sed 's/^/#   /'
    tail -n 40 "$log" | sed 's/^/#   /'
fi
tap_done

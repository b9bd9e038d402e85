#!/usr/bin/env bash
# model.sh - runs the resource model fuzzer ($RINGMESH_BUILD/fuzz/model_fuzz) for 20 seconds
# over tests/fuzz/corpus/model and prints TAP. Skips when the fuzzer was not built (needs
# clang). New inputs go to a scratch directory, so the checked-in corpus stays small; a
# crashing input is kept in $RINGMESH_BUILD/fuzz/artifacts/.
set -u
cd "$(dirname "$0")/../.."
source tests/lib/tap.sh
build=${RINGMESH_BUILD:-build}
fuzzer=$build/fuzz/model_fuzz
if [ ! -x "$fuzzer" ]; then
    skip "model fuzzer not built (make $fuzzer)"
    tap_done
    exit
fi
work=$(mktemp -d /tmp/ringmesh-fuzz-model.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus" "$build/fuzz/artifacts"
log=$work/log
if "$fuzzer" -max_total_time=20 -max_len=8192 -timeout=10 -rss_limit_mb=1024 \
    -print_final_stats=1 -artifact_prefix="$build/fuzz/artifacts/model-" \
    "$work/corpus" tests/fuzz/corpus/model >"$log" 2>&1; then
    runs=$(grep -o 'number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$')
    ok "model fuzzer: 20 s without a finding (${runs:-?} runs)"
else
    not_ok "model fuzzer found a crash" "$(grep -m1 -E 'ERROR|runtime error|SUMMARY' "$log")"
    grep -E 'Test unit written|artifact' "$log" | sed 's/^/#   /'
    tail -n 40 "$log" | sed 's/^/#   /'
fi
tap_done

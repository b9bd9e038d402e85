# tests/fuzz/lib.sh - runs one libFuzzer target briefly and prints TAP; sourced by each
# tests/fuzz/NAME.sh:  fuzz_run NAME MAX_LEN [SECONDS]
# The target is $RINGMESH_BUILD/fuzz/NAME_fuzz (built by make with clang), seeded from a
# copy of tests/fuzz/corpus/NAME in a scratch directory removed on exit, so a run leaves no
# files behind; a crashing input is kept in $RINGMESH_BUILD/fuzz/artifacts/NAME-*. Skips
# when the target was not built. FUZZ_SECONDS overrides the time (default 20).
[ "${BASH_SOURCE[0]}" = "$0" ] && exit 0
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
source tests/lib/tap.sh

fuzz_run() {
    local name=$1 max_len=$2 secs=${3:-${FUZZ_SECONDS:-20}}
    local build=${RINGMESH_BUILD:-build} work log runs
    local fuzzer=$build/fuzz/${name}_fuzz
    if [ ! -x "$fuzzer" ]; then
        skip "$name fuzzer not built (make $fuzzer)"
        return
    fi
    work=$(mktemp -d "/tmp/ringmesh-fuzz-$name.XXXXXX")
    FUZZ_WORK=$work
    trap 'rm -rf "$FUZZ_WORK"' EXIT
    mkdir -p "$work/corpus" "$build/fuzz/artifacts"
    cp tests/fuzz/corpus/"$name"/* "$work/corpus/"
    log=$work/log
    if "$fuzzer" -max_total_time="$secs" -max_len="$max_len" -timeout=10 -rss_limit_mb=1024 \
        -print_final_stats=1 -artifact_prefix="$build/fuzz/artifacts/$name-" \
        "$work/corpus" >"$log" 2>&1; then
        runs=$(grep -o 'number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$')
        ok "$name fuzzer: $secs s without a finding (${runs:-?} runs)"
    else
        not_ok "$name fuzzer found a crash" "$(grep -m1 -E 'ERROR|runtime error|SUMMARY|deadly' "$log")"
        grep -E 'Test unit written|artifact' "$log" | sed 's/^/#   /'
        tail -n 40 "$log" | sed 's/^/#   /'
    fi
}

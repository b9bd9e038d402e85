# tap.sh - TAP output for shell tests; source it. tests/run counts the lines.
#   ok "name"            a pass          not_ok "name" [detail]   a failure
#   check "name" cmd...  runs cmd: pass if it exits 0
#   skip "why"           a skipped check
#   tap_done             prints the plan; exit status is 1 if anything failed
TAP_N=0
TAP_FAILED=0
ok() { TAP_N=$((TAP_N + 1)); echo "ok $TAP_N - $1"; }
not_ok() {
    TAP_N=$((TAP_N + 1)); TAP_FAILED=$((TAP_FAILED + 1))
    echo "not ok $TAP_N - $1"
    [ $# -gt 1 ] && printf '#   %s\n' "${@:2}"
    return 0
}
check() {
    local name=$1; shift
    if "$@"; then ok "$name"; else not_ok "$name" "command failed: $*"; fi
}
skip() { TAP_N=$((TAP_N + 1)); echo "ok $TAP_N # SKIP $1"; }
tap_done() { echo "1..$TAP_N"; [ "$TAP_FAILED" -eq 0 ]; }

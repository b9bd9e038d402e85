#!/usr/bin/env bash
# h2.sh - fuzzes the HTTP/2 connection (server role) for 20 s (tests/fuzz/lib.sh says how).
source "$(dirname "$0")/lib.sh"
fuzz_run h2 16384
tap_done

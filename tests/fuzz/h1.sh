#!/usr/bin/env bash
# h1.sh - fuzzes the HTTP/1.1 codec for 20 s (tests/fuzz/lib.sh says how).
source "$(dirname "$0")/lib.sh"
fuzz_run h1 4096
tap_done

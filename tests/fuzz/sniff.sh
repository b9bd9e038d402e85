#!/usr/bin/env bash
# sniff.sh - fuzzes protocol sniffing for 20 s (tests/fuzz/lib.sh says how).
source "$(dirname "$0")/lib.sh"
fuzz_run sniff 16384
tap_done

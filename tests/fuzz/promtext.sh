#!/usr/bin/env bash
# promtext.sh - fuzzes the Prometheus text reader and ringmeshctl stat's per-Service sums for
# 20 s (tests/fuzz/lib.sh says how).
source "$(dirname "$0")/lib.sh"
fuzz_run promtext 8192
tap_done

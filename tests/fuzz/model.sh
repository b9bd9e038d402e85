#!/usr/bin/env bash
# model.sh - fuzzes the resource model for 20 s (tests/fuzz/lib.sh says how).
source "$(dirname "$0")/lib.sh"
fuzz_run model 8192
tap_done

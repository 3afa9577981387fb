#!/usr/bin/env bash
# The main job: install what is needed, then
#  1. a real SPICE seamless migration between two local QEMUs with livemig's native client
#     following, each step printed with its time;
#  2. a replay of whole libvirt v3/v2 migrations (success and every failure path of
#     spec/libvirt-migration.md §2-§4), verified action by action.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${LIVEMIG_SKIP_SETUP:-}" != 1 ]; then ./scripts/setup.sh; fi
cargo build --release -q -p livemig-host
./target/release/livemig demo
echo
echo "libvirt migration protocol: replaying the scenario corpus (tests/traces/migration)"
./target/release/livemig replay tests/traces/migration/managed-v3-success.jsonl
./target/release/livemig replay --quiet tests/traces/migration/*.jsonl | grep -E '^(tests/|  replayed|  REPLAY)' | paste - - | awk '{printf "  %-60s %s %s %s %s\n", $1, $3, $4, $5, $6}'

#!/usr/bin/env bash
# The main job: install what is needed, then
#  1. the whole story on one machine: two real libvirt daemons (network namespaces lvmA and
#     lvmB), a VM started on the first with SPICE, livemig's native SPICE client linked to it,
#     `livemig migrate` moving the VM to the second and the client following it through a
#     seamless migration, every step printed with its time, every check made, everything
#     torn down (`livemig demo`; `livemig demo --qemu-only` is the same client between two
#     plain QEMUs);
#  2. a replay of whole libvirt v3/v2 migrations (success and every failure path of
#     spec/libvirt-migration.md §2-§4), verified action by action.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${LIVEMIG_SKIP_SETUP:-}" != 1 ]; then ./scripts/setup.sh; fi
cargo build --release -q -p livemig-host
livemig="${CARGO_TARGET_DIR:-target}/release/livemig"
"$livemig" demo
echo
echo "libvirt migration protocol: replaying the scenario corpus (tests/traces/migration)"
"$livemig" replay tests/traces/migration/managed-v3-success.jsonl
"$livemig" replay --quiet tests/traces/migration/*.jsonl | grep -E '^(tests/|  replayed|  REPLAY)' | paste - - | awk '{printf "  %-60s %s %s %s %s\n", $1, $3, $4, $5, $6}'

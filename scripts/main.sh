#!/usr/bin/env bash
# The main job: install what is needed, then replay whole v3 migrations (success and every
# failure path of spec/libvirt-migration.md §2-§4) and print each step readably.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${LIVEMIG_SKIP_SETUP:-}" != 1 ]; then ./scripts/setup.sh; fi
cargo build --release -q -p livemig-host
exec ./target/release/livemig replay tests/traces/migration/*.jsonl

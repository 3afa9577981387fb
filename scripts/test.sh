#!/usr/bin/env bash
# Every test of livemig: formatting, lints, the unit/property/scenario tests of every crate,
# bounded fuzz runs, and the main job itself (so a broken Quick start cannot pass).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh

FUZZ_SECONDS="${LIVEMIG_FUZZ_SECONDS:-60}"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
step() { printf '\n== %s ==\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets -- -D warnings

step "the embeddable WebAssembly module (scripts/build-wasm-abi.sh), for the sandbox tests"
./scripts/build-wasm-abi.sh

step "WebAssembly build (scripts/build-wasm.sh), for the npm package's and the cross-engine tests"
./scripts/build-wasm.sh

step "cargo test"
cargo test --workspace 2>&1 | tee "$log"

step "the npm package's tests and the independent Node host of the module (tests/abi-node)"
(cd js && npm test) 2>&1 | tee "$log.js"
node --test tests/abi-node/ 2>&1 | tee -a "$log.js"
js_passed=$(grep -Eo '^# pass [0-9]+' "$log.js" | awk '{s+=$3} END {print s+0}')
js_failed=$(grep -Eo '^# fail [0-9]+' "$log.js" | awk '{s+=$3} END {print s+0}')
rm -f "$log.js"

step "fuzz (${FUZZ_SECONDS}s per target)"
fuzz_ok=0
fuzz_failed=0
for target in $(cd core/fuzz && cargo +nightly fuzz list); do
  mkdir -p "core/fuzz/corpus/$target"
  echo "-- fuzz target $target"
  if (cd core/fuzz && cargo +nightly fuzz run "$target" "corpus/$target" "seeds/$target" \
        -- -max_total_time="$FUZZ_SECONDS" -print_final_stats=1 2>&1 | tail -n 12); then
    fuzz_ok=$((fuzz_ok + 1))
  else
    fuzz_failed=$((fuzz_failed + 1))
  fi
done

step "main job"
main_ok=0
main_failed=0
if LIVEMIG_SKIP_SETUP=1 ./scripts/main.sh > "$log.main" 2>&1; then
  main_ok=1
  tail -n 3 "$log.main"
else
  main_failed=1
  cat "$log.main"
fi
rm -f "$log.main"

passed=$(grep -Eo 'test result: [A-Za-z]+\. [0-9]+ passed' "$log" | awk '{s+=$4} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed' "$log" | awk '{s+=$1} END {print s+0}')
passed=$((passed + js_passed + fuzz_ok + main_ok))
failed=$((failed + js_failed + fuzz_failed + main_failed))
echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]

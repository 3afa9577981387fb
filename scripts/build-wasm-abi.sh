#!/usr/bin/env bash
# Build the embeddable module (wasm-abi/, crate livemig-wasm-abi): livemig-core as a
# WebAssembly module with no imports and a versioned C ABI (wasm-abi/README.md), for
# wasmtime and other non-JS hosts. Output (not committed):
#
#   ${CARGO_TARGET_DIR:-target}/wasm-abi/livemig_wasm_abi.wasm
#
# which is where `livemig replay --engine wasm` and the sandbox tests look by default.
#
# Route 1: rustup's wasm32-unknown-unknown standard library (prebuilt, panic=abort via the
# `wasm-abi` profile). Route 2 (rustup unreachable): Debian's rustc-web with -Zbuild-std
# (docs: /work/shared/notes/toolchain.md). Then wasm-opt -O3; the artifact is checked to
# import nothing and to export the whole ABI (wasm-abi/examples/check_module.rs), and its
# size printed.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
out_dir="$CARGO_TARGET_DIR/wasm-abi"
out="$out_dir/livemig_wasm_abi.wasm"
mkdir -p "$out_dir"

route=""
if rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown \
   || rustup target add wasm32-unknown-unknown >/dev/null 2>&1; then
  route="rustup $(rustc --version | awk '{print $2}') wasm32-unknown-unknown, profile wasm-abi"
  cargo build --profile wasm-abi --target wasm32-unknown-unknown -p livemig-wasm-abi
  built="$CARGO_TARGET_DIR/wasm32-unknown-unknown/wasm-abi/livemig_wasm_abi.wasm"
else
  echo "rustup cannot add wasm32-unknown-unknown: using Debian's rustc-web (-Zbuild-std)" >&2
  if ! [ -x /usr/bin/rustc ] || ! /usr/bin/rustc --print target-list | grep -qx wasm32-unknown-unknown \
     || ! [ -d /usr/lib/rustlib/src/rust/library ] || ! command -v wasm-ld >/dev/null; then
    apt-get install -y --no-install-recommends rustc-web cargo-web rust-web-src lld >/dev/null
  fi
  route="Debian rustc-web $(/usr/bin/rustc --version | awk '{print $2}') -Zbuild-std, profile wasm-abi"
  # Debian's rustc differs from rustup's: its own target dir.
  RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1 \
  CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=wasm-ld \
    /usr/bin/cargo build --profile wasm-abi --target wasm32-unknown-unknown \
      -Zbuild-std=std,panic_abort --target-dir "$CARGO_TARGET_DIR/wasm-debian" -p livemig-wasm-abi
  built="$CARGO_TARGET_DIR/wasm-debian/wasm32-unknown-unknown/wasm-abi/livemig_wasm_abi.wasm"
fi

# wasm-opt -O3 (binaryen 132, js/ devDependencies, as scripts/build-wasm.sh uses): measured
# 899,956 -> 800,414 B raw, 278,002 -> 268,438 B gzipped, 5-10 % faster in wasmtime, ~4 % in
# Node (BENCHMARKS.md). The stripped module has no target_features section: the flags name
# the features rustc enables for wasm32 by default. Its output is kept while the input, the
# flags and the version stay the same (wasm-opt takes ~20 s).
wasm_opt=js/node_modules/.bin/wasm-opt
if [ ! -x "$wasm_opt" ] || [ js/package-lock.json -nt js/node_modules/.package-lock.json ]; then
  (cd js && npm ci --no-audit --no-fund)
fi
wasm_opt_flags="-O3 --enable-bulk-memory --enable-bulk-memory-opt --enable-nontrapping-float-to-int
  --enable-sign-ext --enable-mutable-globals --enable-reference-types --enable-multivalue
  --enable-call-indirect-overlong --strip-debug --strip-producers"
key=$({ sha256sum <"$built"; echo "$wasm_opt_flags $("$wasm_opt" --version)"; } | sha256sum | cut -c1-32)
if [ ! -f "$out" ] || [ "$(cat "$out_dir/wasm-opt-key" 2>/dev/null)" != "$key" ]; then
  # shellcheck disable=SC2086 # the flags are words
  "$wasm_opt" $wasm_opt_flags -o "$out.tmp" "$built"
  mv "$out.tmp" "$out"
  echo "$key" > "$out_dir/wasm-opt-key"
fi
before=$(wc -c < "$built")
echo "$route, $("$wasm_opt" --version) -O3 (cargo's output: $before B)" > "$out_dir/build-info.txt"
route="$route, wasm-opt -O3 (from $before B)"

# No imports, every ABI export (a dependency-free reader of the module's sections).
cargo run --quiet -p livemig-wasm-abi --example check_module -- "$out"

raw=$(wc -c < "$out")
gz=$(gzip -9 -c "$out" | wc -c)
printf 'livemig_wasm_abi.wasm: %s bytes raw, %s bytes gzipped (-9); route: %s\n' "$raw" "$gz" "$route"
echo "$out"

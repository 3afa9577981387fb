#!/usr/bin/env bash
# Build the npm package's WebAssembly (js/dist/): livemig-wasm for wasm32-unknown-unknown,
# then the wasm-bindgen CLI (--target web), then wasm-opt -Oz from the npm `binaryen` package.
# No wasm-pack. Idempotent: every tool is installed only when missing, and cargo rebuilds
# only what changed. Two modules, never committed:
#   js/dist/livemig_wasm{.js,.d.ts,_bg.wasm}        the package (`livemig`): the machines'
#                                                  object API (no default features);
#   js/dist/trace/livemig_wasm{.js,.d.ts,_bg.wasm}  the conformance engine (`livemig/trace`):
#                                                  feature `trace` (TraceEngine: JSON, every
#                                                  traceable machine).
# js/dist/build-info.json records the toolchain route and the sizes.
#
# Toolchain routes (shared/notes/toolchain.md):
#   rustup  rustup's wasm32-unknown-unknown target (`rustup target add`; fast, but the rustup
#           server is not a guaranteed source);
#   debian  Debian's rustc-web compiler with -Zbuild-std (always available from apt).
# LIVEMIG_WASM_ROUTE=rustup|debian forces one; by default rustup is tried first.
# Honours CARGO_TARGET_DIR (default: target/ at the root; the Debian route uses its own
# wasm-debian/ under it, since its rustc differs).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

log() { printf '[build-wasm] %s\n' "$*"; }
die() {
  printf '[build-wasm] error: %s\n' "$*" >&2
  exit 1
}
have() { command -v "$1" >/dev/null 2>&1; }

crate=livemig-wasm
lib=livemig_wasm
profile=wasm-release
target=wasm32-unknown-unknown
out=$root/js/dist
target_dir=${CARGO_TARGET_DIR:-$root/target}
# The CLI must equal the crate's wasm-bindgen exactly: read the pin from wasm/Cargo.toml.
wb_version=$(sed -n 's/^wasm-bindgen = "=\([0-9.]*\)".*/\1/p' wasm/Cargo.toml)
[ -n "$wb_version" ] || die "wasm/Cargo.toml must pin wasm-bindgen as \"=X.Y.Z\""

t0=$(date +%s)

# 1. A Rust toolchain for the wasm target.
route=${LIVEMIG_WASM_ROUTE:-}
if [ -z "$route" ] || [ "$route" = rustup ]; then
  if have rustup && { rustup target list --installed 2>/dev/null | grep -qx "$target" ||
    { log "adding the $target target (rustup)" && rustup target add "$target"; }; }; then
    route=rustup
  elif [ "$route" = rustup ]; then
    die "route rustup forced, but rustup cannot provide $target"
  else
    log "rustup cannot provide $target: falling back to Debian's rustc-web"
    route=debian
  fi
fi
case $route in
  rustup)
    rustc_version=$(rustc --version)
    build() {
      cargo build --locked -p "$crate" --target "$target" --profile "$profile" \
        --target-dir "$target_dir" "$@"
    }
    artifact=$target_dir/$target/$profile/$lib.wasm
    ;;
  debian)
    missing=()
    for p in rustc-web cargo-web rust-web-src lld; do
      dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
        missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
      log "installing Debian packages: ${missing[*]}"
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq
      apt-get install -y -qq --no-install-recommends "${missing[@]}"
    fi
    have wasm-ld || die "wasm-ld not found (Debian package lld)"
    rustc_version=$(/usr/bin/rustc --version)
    build() {
      RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1 \
        CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=wasm-ld \
        /usr/bin/cargo build --locked -p "$crate" --target "$target" --profile "$profile" \
        -Zbuild-std=std,panic_abort --target-dir "$target_dir/wasm-debian" "$@"
    }
    artifact=$target_dir/wasm-debian/$target/$profile/$lib.wasm
    ;;
  *) die "unknown LIVEMIG_WASM_ROUTE '$route' (rustup or debian)" ;;
esac

# 2. The wasm-bindgen CLI, exactly the crate's version (never --locked: its lockfile names a
#    dependency version the registry no longer serves).
wasm_bindgen=${WASM_BINDGEN:-wasm-bindgen}
if ! "$wasm_bindgen" --version 2>/dev/null | grep -qx "wasm-bindgen $wb_version"; then
  wasm_bindgen=${CARGO_HOME:-$HOME/.cargo}/bin/wasm-bindgen
  if ! "$wasm_bindgen" --version 2>/dev/null | grep -qx "wasm-bindgen $wb_version"; then
    log "installing wasm-bindgen-cli $wb_version (a few minutes, once)"
    cargo install wasm-bindgen-cli --version "=$wb_version"
  fi
fi

# 3. wasm-opt from the npm package binaryen, and the tests' typescript: js/ devDependencies,
#    pinned by js/package-lock.json (npm ci when missing or when the lock file changed).
wasm_opt=$root/js/node_modules/.bin/wasm-opt
if [ ! -x "$wasm_opt" ] || [ js/package-lock.json -nt js/node_modules/.package-lock.json ]; then
  log "installing js/ devDependencies (npm ci)"
  (cd js && npm ci --no-audit --no-fund)
fi

# 4. Build, bind and optimise each module.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
size() { wc -c <"$1" | tr -d ' '; }
gz() { gzip -9 -c "$1" | wc -c | tr -d ' '; }
sizes=""
wasm_opt_flags="-Oz --detect-features --strip-debug --strip-producers"
opt_cache=$target_dir/wasm-opt-cache
# variant NAME OUTPUT_DIR CARGO_FEATURE_ARGS...
variant() {
  local name=$1 dir=$2
  shift 2
  log "cargo build: $name module ($route route, profile $profile)"
  build "$@"
  [ -f "$artifact" ] || die "no $artifact"
  "$wasm_bindgen" --target web --weak-refs --remove-name-section --remove-producers-section \
    --out-dir "$tmp/$name" --out-name "$lib" "$artifact"
  # Both feature sets link to the same path: check which one was bound.
  local has_trace=no
  if grep -q 'class TraceEngine' "$tmp/$name/$lib.js"; then has_trace=yes; fi
  case $name:$has_trace in
    trace:yes | package:no) ;;
    *) die "the $name module was bound from the wrong build (TraceEngine: $has_trace)" ;;
  esac
  # Rust >= 1.82 emits reference-types, multivalue, bulk-memory and more: wasm-opt reads
  # them from the module's target_features section. wasm-opt is most of a warm build's
  # time, so its output is cached by the input's hash (and the flags' and version's).
  local key cached
  key=$({ sha256sum <"$tmp/$name/${lib}_bg.wasm"; echo "$wasm_opt_flags $("$wasm_opt" --version)"; } |
    sha256sum | cut -c1-32)
  cached=$opt_cache/$key.wasm
  if [ ! -f "$cached" ]; then
    # shellcheck disable=SC2086 # the flags are words
    "$wasm_opt" $wasm_opt_flags -o "$tmp/$name/opt.wasm" "$tmp/$name/${lib}_bg.wasm"
    mkdir -p "$opt_cache"
    mv "$tmp/$name/opt.wasm" "$cached"
  fi
  cp "$cached" "$tmp/$name/${lib}_bg.wasm"
  touch "$cached"
  mkdir -p "$dir"
  for f in "$lib.js" "$lib.d.ts" "${lib}_bg.wasm"; do
    cp "$tmp/$name/$f" "$dir/$f"
  done
  local wasm=$dir/${lib}_bg.wasm glue=$dir/$lib.js
  sizes="$sizes${sizes:+,}
    \"$name\": { \"cargo_wasm\": $(size "$artifact"), \"wasm\": $(size "$wasm"), \"wasm_gzip\": $(gz "$wasm"), \"glue_js\": $(size "$glue"), \"glue_js_gzip\": $(gz "$glue") }"
  log "$name: $(size "$wasm") B wasm ($(gz "$wasm") B gzipped), $(size "$glue") B JS glue ($(gz "$glue") B gzipped)"
}
variant package "$out" --no-default-features
variant trace "$out/trace" --features trace
# Keep the cache small: drop entries this run did not use (older than its start).
find "$opt_cache" -name '*.wasm' ! -newermt "@$t0" -delete 2>/dev/null || true

# 5. Record the route; the sizes name the route they were measured with.
cat >"$out/build-info.json" <<JSON
{
  "route": "$route",
  "rustc": "$rustc_version",
  "wasm_bindgen": "$wb_version",
  "wasm_opt": "$("$wasm_opt" --version)",
  "profile": "$profile",
  "sizes_route": "$route",
  "sizes": {$sizes
  },
  "seconds": $(($(date +%s) - t0))
}
JSON
log "ok ($route route) in $(($(date +%s) - t0)) s: js/dist/build-info.json"

#!/usr/bin/env bash
# Install everything livemig's build, tests and main job need. Idempotent, and quick when
# everything is already there. Uses only the machine's registries (crates, Debian, npm).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[setup] %s\n' "$*"; }
have() { command -v "$1" >/dev/null 2>&1; }

# Rust: stable with rustfmt and clippy (rustup is on the machine image).
if ! have cargo; then
  echo "[setup] cargo not found: this project needs the machine's rustup toolchain" >&2
  exit 1
fi
for c in rustfmt clippy; do
  rustup component list --installed 2>/dev/null | grep -q "^$c" || rustup component add "$c"
done

# Nightly (for cargo-fuzz's sanitizer builds) and cargo-fuzz itself.
if ! rustup toolchain list | grep -q '^nightly'; then
  log "installing the nightly toolchain"
  rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  log "installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

# Debian packages for the real-peer tests. apt-get runs only when something is missing.
need_apt=()
have qemu-system-x86_64 || need_apt+=(qemu-system-x86)
# Two real libvirt daemons (libvirt-real-peer.md §1): never libvirt-daemon-system, which
# would replace init.
{ [ -x /usr/sbin/libvirtd ] && have virsh; } || need_apt+=(libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients)
have openssl || need_apt+=(openssl)
[ -x /usr/bin/python3 ] || need_apt+=(python3-minimal)   # the F1 port blocker in libvirt tests
have ip || need_apt+=(iproute2)
[ -x /usr/bin/chromium ] || need_apt+=(chromium)   # the npm package's browser test (headless)
if [ ${#need_apt[@]} -gt 0 ]; then
  log "installing Debian packages: ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

# libvirt's Debian build resolves its default QEMU user before reading qemu.conf (§9.3).
getent passwd libvirt-qemu >/dev/null || useradd --system --user-group --no-create-home \
  --home-dir /var/lib/libvirt --shell /usr/sbin/nologin libvirt-qemu

log "ok: $(cargo --version), $(cargo +nightly --version), $(cargo fuzz --version), $(qemu-system-x86_64 --version | head -n 1), $(/usr/sbin/libvirtd --version)"
